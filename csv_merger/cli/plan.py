"""Printing a dry run's ``DeliveryPlan`` (``deliver --dry-run``, ``run --dry-run``)."""

from __future__ import annotations

from csv_merger.wording import plural


def print_plan(plan) -> None:
    """The plan on stdout: counts, skips, destination capacity, refused rows (first 10), the first bodies,
    the estimate."""
    print(f"dry run: job {plan.job_id}, limit key {plan.limit_key}: {plural(plan.rows_total, 'row')}, "
          f"{plan.already_delivered} already delivered, {plan.to_send} to send, "
          f"{len(plan.refused)} would be dead-lettered without sending")
    print(f"skipped: {plan.already_at_destination} already at the destination, {plan.suppressed} suppressed")
    for use in plan.destinations:
        left = f", {max(0, use.ceiling - use.used):,} left" if use.ceiling else ""
        print(f"destination {use.text()}{left}")
    if plan.fits:
        print(f"capacity: the {plural(plan.to_send, 'row')} to send {'fits' if plan.to_send == 1 else 'fit'}")
    else:
        print(f"capacity: only {plan.room:,} of the {plural(plan.to_send, 'row')} to send fit; the rest would be "
              "dead-lettered as not-sent (add a destination: --webhook-url again)")
    for number, reason in plan.refused[:10]:
        print(f"  row {number}: {reason}")
    if len(plan.refused) > 10:
        print(f"  ... and {len(plan.refused) - 10} more")
    for number, key, body in plan.samples:
        print(f"  row {number} (Idempotency-Key {key}): {body}")
    print(f"estimate: {plan.estimate_s:.0f} s at {plan.rate:g} requests/s after the burst; nothing was sent")
