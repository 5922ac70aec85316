"""Values every portal page needs: the navigation."""

from django.http import HttpRequest

# (label, url name, icon). Each app's views still check the role; this only draws the menu.
NAVIGATION = [
    ("Basket", "workflows:basket", "inbox"),
    ("Processes", "workflows:process-list", "diagram-3"),
    ("Start process", "workflows:start-list", "play-circle"),
    ("Workflows", "workflows:definition-list", "bezier2"),
    ("Events", "workflows:event-list", "broadcast"),
    ("Car parks", "carparks:carpark-list", "p-square"),
    ("Customers & contracts", "carparks:customer-list", "people"),
    ("Billing", "billing:invoice-list", "receipt"),
    ("CPMS", "connect:connection-list", "plug"),
    ("Monitoring", "monitoring:dashboard", "graph-up"),
    ("Administration", "accounts:user-list", "gear"),
]


# Links only some roles may follow; the others do not see them (the views check anyway).
NAVIGATION_ROLES = {
    "accounts:user-list": ("Administrator",),
    "billing:invoice-list": ("Finance",),
    "workflows:event-list": ("Workflow admin", "Supervisor"),
}


def portal(request: HttpRequest) -> dict:
    from accounts.roles import has_any_role, has_role
    from accounts.two_factor import is_two_factor_pending

    user = getattr(request, "user", None)
    # A user between the password and the TOTP step, or without any role, gets no navigation
    # (and so none of its htmx polls): every link would only send them back or answer 403.
    ready = bool(user and has_any_role(user) and not is_two_factor_pending(user))
    navigation = [
        entry for entry in NAVIGATION if entry[1] not in NAVIGATION_ROLES or has_role(user, *NAVIGATION_ROLES[entry[1]])
    ]
    if ready:
        from workflows.event_views import can_start_any  # one small query: is there anything this user may start?

        if not can_start_any(user):
            navigation = [entry for entry in navigation if entry[1] != "workflows:start-list"]
    # portal_live_badges: the basket and notification badges poll portal URLs only when ready.
    return {"portal_navigation": navigation if ready else [], "portal_ready": ready, "portal_live_badges": ready}
