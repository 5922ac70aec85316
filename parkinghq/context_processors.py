"""Values every portal page needs: the navigation."""

from django.http import HttpRequest

# (label, url name, icon). Each app's views still check the role; this only draws the menu.
NAVIGATION = [
    ("Basket", "workflows:basket", "inbox"),
    ("Processes", "workflows:process-list", "diagram-3"),
    ("Workflows", "workflows:definition-list", "bezier2"),
    ("Car parks", "carparks:carpark-list", "p-square"),
    ("Customers & contracts", "carparks:customer-list", "people"),
    ("Billing", "billing:invoice-list", "receipt"),
    ("CPMS", "connect:connection-list", "plug"),
    ("Monitoring", "monitoring:dashboard", "graph-up"),
    ("Administration", "accounts:user-list", "gear"),
]


def portal(request: HttpRequest) -> dict:
    from accounts.two_factor import is_two_factor_pending

    user = getattr(request, "user", None)
    # Live badges (basket count, unread notifications) poll portal URLs: not while the second
    # factor is pending, when every such request would be sent to the two-factor page.
    live = bool(user is not None and user.is_authenticated and not is_two_factor_pending(user))
    return {"portal_navigation": NAVIGATION, "portal_live_badges": live}
