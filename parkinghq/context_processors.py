"""Values every portal page needs: the navigation."""

from django.http import HttpRequest

from parkinghq.navigation import menu


def portal(request: HttpRequest) -> dict:
    from accounts.roles import has_any_role
    from accounts.two_factor import is_two_factor_pending

    user = getattr(request, "user", None)
    # A user between the password and the TOTP step, or without any role, gets no navigation
    # (and so none of its htmx polls): every link would only send them back or answer 403.
    ready = bool(user and has_any_role(user) and not is_two_factor_pending(user))
    # The menu shows what this user's role lets them open, by the views' own checks (parkinghq.navigation).
    navigation = menu(user, request.path) if ready else []
    # portal_live_badges: the basket and notification badges poll portal URLs only when ready.
    return {"portal_navigation": navigation, "portal_ready": ready, "portal_live_badges": ready}
