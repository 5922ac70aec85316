"""The season-contract shape of bench/engine.py as a viewflow 2 flow.

start (from code) → review (user; 1 in 10 rejected → end) → decision on the deposit →
activate credential (system: a Handle, run from code in its own transaction as a Celery job would run
it) → confirm payment setup (user) → end. A viewflow View has one outgoing edge, so the review's
approve/reject outcome is an If gateway after it.
"""

from viewflow import this
from viewflow.workflow import flow, lock
from viewflow.workflow.flow.views import UpdateProcessView

from .models import SeasonProcess


class SeasonFlow(flow.Flow):
    """Bench season contract"""

    process_class = SeasonProcess
    lock_impl = lock.select_for_update_lock  # the lock viewflow recommends for PostgreSQL

    start = flow.StartHandle(this.start_contract).Next(this.review)
    review = (
        flow.View(UpdateProcessView.as_view(fields=["approved", "note"]))
        .Permission("season_peer.back_office")
        .Next(this.review_outcome)
    )
    review_outcome = flow.If(this.is_approved).Then(this.needs_deposit).Else(this.rejected)
    needs_deposit = flow.If(this.has_deposit).Then(this.activate_credential).Else(this.activate_credential)
    activate_credential = flow.Handle(this.issue_credential).Next(this.confirm_payment)
    confirm_payment = (
        flow.View(UpdateProcessView.as_view(fields=[])).Permission("season_peer.back_office").Next(this.approved)
    )
    approved = flow.End()
    rejected = flow.End()

    def start_contract(self, activation, deposit, contract_id):
        activation.process.deposit = deposit
        activation.process.contract_id = contract_id
        return activation.process

    def is_approved(self, activation):
        return activation.process.approved

    def has_deposit(self, activation):
        return activation.process.deposit > 0

    def issue_credential(self, activation):
        activation.process.credential_id = f"C-{activation.process.contract_id}"
        activation.process.save()
