#!/usr/bin/env python3
"""Sends events to a Starling node through a real tracker SDK from PyPI, unchanged but for the
host, and prints what it sent as JSON (one object: sdk, session, the events' ids and keys).

    python3 ops/sdk/send.py --sdk segment|rudderstack|posthog|snowplow-post|snowplow-get \
        --target http://127.0.0.1:8081 --session S [--key KEY] [--gzip]

Bounded: each SDK is flushed and shut down before the script exits (at most ~60 s of retries).
"""
import argparse, json, sys, time, uuid

def segment(a, module):
    if module == "segment":
        import segment.analytics as analytics
        analytics.host = a.target
    else:
        import rudderstack.analytics as analytics
        analytics.dataPlaneUrl = a.target
    analytics.write_key = a.key
    if a.gzip:
        analytics.gzip = True   # else the SDK's default (RudderStack gzips, Segment does not)
    analytics.max_retries = 6
    errors = []
    analytics.on_error = lambda e, batch: errors.append(str(e))
    sent = []
    ctx = {"sessionId": a.session} if a.session else {}
    user, anon = "u-" + a.session, "anon-" + a.session
    for i in range(3):
        mid = str(uuid.uuid4())
        analytics.track(user_id=user, anonymous_id=anon, event="added_to_cart",
                        properties={"sku": "sku-%d" % i, "price": 9.5 + i}, context=dict(ctx), message_id=mid)
        sent.append({"event_id": mid, "key": "added_to_cart"})
    mid = str(uuid.uuid4())
    analytics.page(user_id=user, anonymous_id=anon, category="shop", name="checkout",
                   properties={"url": "https://shop.example/checkout"}, context=dict(ctx), message_id=mid)
    sent.append({"event_id": mid, "key": "page"})
    mid = str(uuid.uuid4())
    analytics.identify(user_id=user, anonymous_id=anon, traits={"plan": "pro"}, context=dict(ctx), message_id=mid)
    sent.append({"event_id": mid, "key": "identify"})
    analytics.flush()
    analytics.shutdown()
    return sent, errors

def posthog(a):
    from posthog import Posthog
    errors = []
    client = Posthog(a.key, host=a.target, gzip=a.gzip, max_retries=6, on_error=lambda e, batch: errors.append(str(e)))
    sent = []
    for i in range(3):
        u = str(uuid.uuid4())
        client.capture("added_to_cart", distinct_id="u-" + a.session, uuid=u,
                       properties={"$session_id": a.session, "sku": "sku-%d" % i})
        sent.append({"event_id": u, "key": "added_to_cart"})
    u = str(uuid.uuid4())
    client.capture("$pageview", distinct_id="u-" + a.session, uuid=u,
                   properties={"$session_id": a.session, "$current_url": "https://shop.example/"})
    sent.append({"event_id": u, "key": "$pageview"})
    client.flush()
    client.shutdown()
    return sent, errors

def snowplow(a, method):
    from snowplow_tracker import Tracker, Emitter, Subject, PageView, StructuredEvent, SelfDescribing, SelfDescribingJson
    host = a.target.split("://", 1)[1]
    attempts = []
    emitter = Emitter(host, protocol="http", method=method, batch_size=1 if method == "get" else 10,
                      on_failure=lambda n, failed: attempts.append("%d failed" % n), max_retry_delay_seconds=5)
    subject = Subject().set_user_id("u-" + a.session).set_domain_session_id(a.session).set_domain_user_id("d-" + a.session)
    tracker = Tracker("starling-test", emitter, subject=subject, app_id=a.key or "shop", encode_base64=True)
    tracker.track(PageView(page_url="https://shop.example/", page_title="Shop"))
    tracker.track(StructuredEvent(category="cart", action="add", label="sku-1", value=2))
    tracker.track(SelfDescribing(SelfDescribingJson("iglu:com.acme/link_click/jsonschema/1-0-0", {"target": "/checkout"})))
    tracker.flush()
    # A failed send goes back to the emitter's buffer and is retried on a timer (the SDK's own
    # retry): wait, bounded, until nothing is left to send.
    deadline = time.time() + 90
    while time.time() < deadline and (emitter.retry_timer.is_active() or emitter.event_store.size() > 0):
        time.sleep(0.2)
        if not emitter.retry_timer.is_active() and emitter.event_store.size() > 0:
            tracker.flush()
    errors = [] if emitter.event_store.size() == 0 else ["%d events never delivered (%s)" % (emitter.event_store.size(), attempts)]
    # The tracker makes the event ids; the node's answer is checked by count and keys.
    return [{"event_id": None, "key": k} for k in ["page_view", "add", "link_click"]], errors

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdk", required=True, choices=["segment", "rudderstack", "posthog", "snowplow-post", "snowplow-get"])
    ap.add_argument("--target", required=True)
    ap.add_argument("--session", required=True)
    ap.add_argument("--key", default="wk-test")
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    if a.sdk in ("segment", "rudderstack"):
        sent, errors = segment(a, a.sdk)
    elif a.sdk == "posthog":
        sent, errors = posthog(a)
    else:
        sent, errors = snowplow(a, a.sdk.split("-")[1])
    print(json.dumps({"sdk": a.sdk, "session": a.session, "sent": sent, "errors": errors}))
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main())
