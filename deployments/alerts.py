"""Alerts as Prefect automations: a notification block, and three automations
that use it.

- a flow run of csv-merger (merge-and-deliver, nightly-inbox, deliver-consumer)
  fails or crashes;
- a job ends with dead letters (our ``csv-merger.job.dead-lettered`` event,
  see tasks/events.py);
- a nightly inbox run finds no file (``csv-merger.inbox.empty``).

The block is ``CSV_MERGER_ALERT_BLOCK`` (any Prefect notification block, e.g.
an e-mail block) or, from ``CSV_MERGER_ALERT_WEBHOOK_URL``, a Custom Webhook
block posting ``{"text": "<subject>\\n<body>"}`` (the body Slack's incoming
webhooks take). Automations are recreated by name, so ``setup`` stays
idempotent. Prefect renders ``{{ ... }}`` in subjects and bodies from the
triggering event and flow run.
"""

from __future__ import annotations

from csv_merger.errors import ConfigError
from csv_merger.settings import get_settings

WEBHOOK_BLOCK = "csv-merger-alerts"
FLOWS = ["merge-and-deliver", "nightly-inbox", "deliver-consumer"]
PREFIX = "csv-merger: "


def notification_block_id():
    """The alert block's document id (UUID), saving the webhook block first; None when no alert is configured.
    Raises ConfigError when ``CSV_MERGER_ALERT_BLOCK`` names no block."""
    settings = get_settings()
    if settings.alert_block:
        from prefect.blocks.core import Block

        try:
            return Block.load(settings.alert_block)._block_document_id
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"CSV_MERGER_ALERT_BLOCK {settings.alert_block!r}: no such Prefect block "
                              f"({exc}); use 'block-type/block-name'") from None
    if settings.alert_webhook_url is None:
        return None
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK, url="{{url}}", json_data={"text": "{{subject}}\n{{body}}"},
        secrets={"url": settings.alert_webhook_url.get_secret_value()})  # the URL is a credential
    block.save(WEBHOOK_BLOCK, overwrite=True)
    return block._block_document_id


def _automations(block_id) -> list:
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification

    def alert(name: str, expect: set[str], subject: str, body: str, related: dict | None = None) -> Automation:
        trigger = EventTrigger(expect=expect, match_related=related or {}, posture=Posture.Reactive, threshold=1)
        action = SendNotification(block_document_id=block_id, subject=subject, body=body)
        return Automation(name=PREFIX + name, trigger=trigger, actions=[action])

    return [
        alert("run failed or crashed", {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
              "csv-merger: flow run {{ flow_run.name }} {{ flow_run.state.name }}",
              "{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
              "{{ flow_run.state.message }}",
              related={"prefect.resource.role": "flow", "prefect.resource.name": FLOWS}),
        alert("dead letters", {"csv-merger.job.dead-lettered"},
              "csv-merger: job {{ event.payload.job_id }} has dead letters",
              "{{ event.payload.failed }} of {{ event.payload.rows_total }} rows could not be delivered "
              "({{ event.payload.delivered }} delivered); dead-letter file: {{ event.payload.dead_letter_path }}"),
        alert("inbox empty", {"csv-merger.inbox.empty"},
              "csv-merger: nightly inbox found no file",
              "The nightly inbox run found no new CSV file in {{ event.payload.inbox }}."),
    ]


def apply_alerts() -> list[str]:
    """Create (or recreate) the alert automations; return their names, [] when no alert target is set."""
    block_id = notification_block_id()
    if block_id is None:
        return []
    from prefect.client.orchestration import get_client

    automations = _automations(block_id)
    with get_client(sync_client=True) as client:
        for automation in automations:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            automation.create()
    return [a.name for a in automations]
