"""Signals other apps hook onto (connect pushes credentials, billing reacts to lifecycle changes).

Both are sent after the transaction that made the change has committed.
"""

from django.dispatch import Signal

# sender=Contract, contract=..., from_state=..., to_state=...
contract_state_changed = Signal()
# sender=Contract, contract=...: credentials were issued, changed or deactivated.
credentials_changed = Signal()
