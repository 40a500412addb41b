#!/usr/bin/python3
"""The operator at the provider's web pages, as a browser: nothing but HTTPS
requests to the pages the provider serves, with cookies kept and forms
parsed from the HTML (html.parser), no shortcut into the provider.

    sign_in(verification_uri, user_code, username, password)   -> approved
    sign_in(..., deny_at="confirm" | "login" | "consent")      -> declined

Also usable by hand:  browser.py URI CODE USER PASSWORD [deny-at]
(trusts PG_TEST_CA).
"""
import http.cookiejar
import os
import sys
import ssl
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser


class OperatorError(Exception):
    pass


class Forms(HTMLParser):
    """Forms of a page: action, method, fields, and submit buttons, including
    controls outside a form that name it with form="ID" (as oidc-provider's
    device pages do)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []        # dicts: id, action, method, fields [(name, value, type)], buttons
        self.orphans = []      # (form-id, kind, attrs) of controls outside their form
        self.title = ""
        self.text = []
        self._in_title = False
        self._open = None      # the form being read
        self._button = None    # the button being read (its text)

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "form":
            self._open = {"id": a.get("id", ""), "action": a.get("action", ""),
                          "method": a.get("method", "get").lower(), "fields": [],
                          "buttons": []}
            self.forms.append(self._open)
        elif tag in ("input", "button", "select", "textarea"):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            target = self._open
            if "form" in a:
                target = None
                self.orphans.append((a["form"], tag, kind, a))
            if target is None:
                if tag == "button":
                    self._button = a
                    a["_text"] = ""
                return
            if kind in ("submit", "image") or tag == "button" and kind == "submit":
                a["_text"] = ""
                target["buttons"].append(a)
                if tag == "button":
                    self._button = a
            elif kind in ("hidden", "text", "password", "email", "number", "tel") \
                    and a.get("name"):
                target["fields"].append((a["name"], a.get("value", ""), kind))
            elif kind in ("checkbox", "radio") and a.get("name") and "checked" in a:
                target["fields"].append((a["name"], a.get("value", "on"), kind))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "form":
            self._open = None
        elif tag == "button":
            self._button = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._button is not None:
            self._button["_text"] += data
        self.text.append(data)

    def resolve(self):
        by_id = {f["id"]: f for f in self.forms if f["id"]}
        for fid, tag, kind, a in self.orphans:
            f = by_id.get(fid)
            if not f:
                continue
            if kind == "submit" or tag == "button" and kind == "submit":
                f["buttons"].append(a)
            elif a.get("name"):
                f["fields"].append((a["name"], a.get("value", ""), kind))
        return self


def parse(html):
    p = Forms()
    p.feed(html)
    p.close()
    return p.resolve()


class Browser:
    def __init__(self, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile or os.environ["PG_TEST_CA"])
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=ctx), NoRedirect)
        self.history = []  # (method, url, status)

    def request(self, method, url, form=None):
        """One request, then redirects followed as a browser does (303 and
        302 after POST become GET).  Returns (final url, status, html)."""
        for _ in range(20):
            if not url.startswith("https://"):
                raise OperatorError(f"refusing to follow to a non-https URL: {url}")
            data = urllib.parse.urlencode(form).encode() if form is not None else None
            req = urllib.request.Request(url, data=data, method=method, headers={
                "User-Agent": "poolgate-interop-operator/1",
                "Accept": "text/html"})
            if data is not None:
                req.add_header("Content-Type", "application/x-www-form-urlencoded")
            try:
                with self.opener.open(req, timeout=15) as r:
                    status, body = r.status, r.read().decode("utf-8", "replace")
                    location = None
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read().decode("utf-8", "replace")
                location = e.headers.get("Location")
            self.history.append((method, url, status))
            if status in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                if status in (301, 302, 303):
                    method, form = "GET", None
                continue
            return url, status, body
        raise OperatorError("too many redirects")

    def submit(self, page_url, html, form_id=None, button=None, values=None, action_has=None):
        """Submit a form of the page the way a click on `button` (its text, or
        None for the form's first unnamed button) would."""
        forms = parse(html).forms
        form = None
        for f in forms:
            if form_id is not None and f["id"] != form_id:
                continue
            if action_has is not None and action_has not in f["action"]:
                continue
            form = f
            break
        if form is None:
            raise OperatorError(f"no form {form_id or action_has!r} on {page_url}: "
                                f"{[(f['id'], f['action']) for f in forms]}")
        fields = [(n, v) for n, v, _ in form["fields"]]
        for name, value in (values or {}).items():
            fields = [(n, v) for n, v in fields if n != name] + [(name, value)]
        chosen = None
        for b in form["buttons"]:
            text = b.get("_text", b.get("value", "")).strip()
            if (button is None and not b.get("name")) or (button and button in text):
                chosen = b
                break
        if chosen is None and button is not None:
            raise OperatorError(f"no button {button!r} in form {form['id'] or form['action']}")
        if chosen is not None and chosen.get("name"):
            fields.append((chosen["name"], chosen.get("value", "")))
        action = urllib.parse.urljoin(page_url, form["action"] or page_url)
        if form["method"] == "post":
            return self.request("POST", action, dict(fields))
        return self.request("GET", action + "?" + urllib.parse.urlencode(fields))


def title(html):
    return parse(html).title.strip()


def sign_in(verification_uri, user_code, username, password, deny_at=None, cafile=None):
    """Walk the provider's pages.  Returns a dict: outcome ("approved" or
    "declined"), the titles of the pages seen, and the request history.
    Raises OperatorError when a page is not what a person would expect."""
    b = Browser(cafile)
    seen = []

    def step(result, expect_status=200):
        url, status, html = result
        seen.append(title(html) or f"HTTP {status}")
        if status != expect_status:
            raise OperatorError(f"{url}: HTTP {status}: {html[:300]!r}")
        return url, html

    url, html = step(b.request("GET", verification_uri))
    # The code entry page.
    url, html = step(b.submit(url, html, form_id="op.deviceInputForm",
                              values={"user_code": user_code}))
    # The confirmation page: the code is shown again; Continue or Abort.
    if user_code not in html:
        raise OperatorError(f"the confirmation page does not show the code: {html[:300]!r}")
    if deny_at == "confirm":
        url, html = step(b.submit(url, html, form_id="op.deviceConfirmForm", button="Abort"))
        return {"outcome": "declined", "pages": seen, "history": b.history}
    url, html = step(b.submit(url, html, form_id="op.deviceConfirmForm", button="Continue"))
    # The login interaction.
    if "/interaction/" not in url or parse(html).title.strip() != "Sign in":
        raise OperatorError(f"expected the login page, got {url} {title(html)!r}")
    if deny_at == "login":
        url, html = step(b.submit(url, html, form_id="abort"))
        return {"outcome": "declined", "pages": seen, "history": b.history}
    url, html = step(b.submit(url, html, form_id="login",
                              values={"username": username, "password": password}))
    # Consent (a fresh browser has no grant yet).
    if "/interaction/" in url and title(html) == "Authorize":
        if deny_at == "consent":
            url, html = step(b.submit(url, html, form_id="abort"))
            return {"outcome": "declined", "pages": seen, "history": b.history}
        url, html = step(b.submit(url, html, form_id="consent"))
    if title(html) != "Sign-in Success":
        raise OperatorError(f"expected the success page, got {url} {title(html)!r}: "
                            f"{' '.join(parse(html).text)[:300]!r}")
    return {"outcome": "approved", "pages": seen, "history": b.history}


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: browser.py VERIFICATION_URI USER_CODE USER PASSWORD [confirm|login|consent]")
    r = sign_in(*sys.argv[1:5], deny_at=sys.argv[5] if len(sys.argv) == 6 else None)
    print(r["outcome"], " -> ".join(r["pages"]))
