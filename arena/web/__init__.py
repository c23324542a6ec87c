"""People at the table: a local web page where raters answer moves (`human:web`, `arena study`).

    desk.py    RatingDesk: items waiting for people, handed out, answered or timed out (no web)
    app.py     the Starlette app: the page, /api/next, /api/answer; tokens, limits, one-line refusals
    host.py    WebHost: uvicorn in a thread on localhost, the invitation link; WebConfig
    assets/    rate.html, rate.js, rate.css (model text is written with textContent, never as markup)

The web packages (starlette, uvicorn) are the optional `web` extra, imported only when a page
is served.
"""
from arena.web.desk import Answer, Item, RatingDesk, Refused
from arena.web.host import WebConfig, WebHost, missing_web_packages

__all__ = ["Answer", "Item", "RatingDesk", "Refused", "WebConfig", "WebHost", "missing_web_packages"]
