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
    return {"portal_navigation": NAVIGATION}
