"""The peer's process: viewflow's own Process row, the contract's variables in its ``data`` JSON."""

from viewflow import jsonstore
from viewflow.workflow.models import Process


class SeasonProcess(Process):
    deposit = jsonstore.IntegerField(default=0)
    contract_id = jsonstore.IntegerField(null=True)
    approved = jsonstore.BooleanField(default=False)
    note = jsonstore.CharField(max_length=200, blank=True)
    credential_id = jsonstore.CharField(max_length=50, blank=True)

    class Meta:
        proxy = True
        permissions = [("back_office", "Back-office agent")]
