"""Printing a dry run's ``DeliveryPlan`` (``deliver --dry-run``, ``run --dry-run``)."""

from __future__ import annotations


def print_plan(plan) -> None:
    """The plan on stdout: counts, refused rows (first 10), the first bodies, the estimate."""
    print(f"dry run: job {plan.job_id}, limit key {plan.limit_key}: {plan.rows_total} rows, "
          f"{plan.already_delivered} already delivered, {plan.to_send} to send, "
          f"{len(plan.refused)} would be dead-lettered without sending")
    for number, reason in plan.refused[:10]:
        print(f"  row {number}: {reason}")
    if len(plan.refused) > 10:
        print(f"  ... and {len(plan.refused) - 10} more")
    for number, key, body in plan.samples:
        print(f"  row {number} (Idempotency-Key {key}): {body}")
    print(f"estimate: {plan.estimate_s:.0f} s at {plan.rate:g} requests/s after the burst; nothing was sent")
