#!/usr/bin/env bash
# Renders an HTML file (e.g. `recordbridge report --format html --out FILE`) in
# headless Chromium and saves a full-page PNG screenshot. Fails if the page
# logged any console error (console.error/console.assert, an uncaught
# exception, or a browser-side error such as a blocked or missing resource),
# or if the PNG is missing or empty.
#
#   deploy/local/report_screenshot.sh HTML_FILE PNG_FILE
#
# Installs Debian's `chromium` package if /usr/bin/chromium is missing.
# Console errors are read through the DevTools protocol over
# --remote-debugging-pipe (Python 3 standard library only): Chromium's
# --enable-logging output tags every console message INFO:CONSOLE, whatever
# its level, so it cannot tell console.error from console.log.
#
# Env: RECORDBRIDGE_TEST_SCREENSHOT_WIDTH    viewport width in px (1200)
#      RECORDBRIDGE_TEST_SCREENSHOT_TIMEOUT  seconds for the whole render (90)
# Exit: 0 ok; 1 console errors or render failure; 2 usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 HTML_FILE PNG_FILE" >&2
    exit 2
fi
html="$1" png="$2"
if [ ! -f "$html" ]; then
    rb_err "${html}: no such file"
    exit 2
fi

chromium_bin=/usr/bin/chromium
if [ ! -x "$chromium_bin" ]; then
    rb_log "${chromium_bin} missing; installing the Debian package chromium"
    _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null
    if [ ! -x "$chromium_bin" ]; then
        rb_err "apt-get installed chromium but ${chromium_bin} is still missing"
        exit 1
    fi
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/recordbridge-screenshot.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/profile"
rm -f "$png"

rb_log "rendering ${html} -> ${png} with $("$chromium_bin" --version 2>/dev/null || echo chromium)"
rc=0
python3 - "$chromium_bin" "$tmp/profile" "$tmp/chromium.log" "$html" "$png" \
    "${RECORDBRIDGE_TEST_SCREENSHOT_WIDTH:-1200}" "${RECORDBRIDGE_TEST_SCREENSHOT_TIMEOUT:-90}" <<'PY' || rc=$?
"""Drive headless Chromium over --remote-debugging-pipe (fd 3: commands in,
fd 4: replies out; JSON messages separated by NUL bytes)."""
import base64, fcntl, json, os, pathlib, select, signal, subprocess, sys, time

chromium, profile, log_path, html, png, width, timeout = sys.argv[1:8]
width, deadline = int(width), time.monotonic() + float(timeout)
url = pathlib.Path(html).resolve().as_uri()


def high(fd):
    """The same pipe end at fd >= 10, so dup2 onto 3 and 4 never collides."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


cmd_r, cmd_w = map(high, os.pipe())
resp_r, resp_w = map(high, os.pipe())


def child_fds():
    os.dup2(cmd_r, 3)  # inheritable; the originals are close-on-exec
    os.dup2(resp_w, 4)


argv = [
    chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--hide-scrollbars", "--remote-debugging-pipe",
    f"--user-data-dir={profile}", f"--window-size={width},900", "about:blank",
]
log = open(log_path, "wb")
proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                        preexec_fn=child_fds, close_fds=False, start_new_session=True)
os.close(cmd_r)
os.close(resp_w)

buf, events, next_id = b"", [], 0
errors = []  # human-readable console errors


class Fail(Exception):
    pass


def note(msg):
    """Record console errors from protocol events."""
    method, p = msg.get("method"), msg.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        text = " ".join(str(a.get("value", a.get("description", a.get("type"))))
                        for a in p.get("args", []))
        errors.append(f"console.{p['type']}: {text}")
    elif method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        desc = d.get("exception", {}).get("description") or d.get("text", "exception")
        errors.append(f"uncaught exception: {desc} ({d.get('url', '')}:{d.get('lineNumber', '?')})")
    elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        errors.append(f"{e.get('source', 'browser')} error: {e.get('text', '')} {e.get('url', '')}".rstrip())


def read_one(until):
    """Next message, or None when `until` (monotonic) has passed."""
    global buf
    while b"\0" not in buf:
        left = min(until, deadline) - time.monotonic()
        if left <= 0:
            if time.monotonic() >= deadline:
                raise Fail(f"timed out after {timeout} s")
            return None
        ready, _, _ = select.select([resp_r], [], [], left)
        if ready:
            chunk = os.read(resp_r, 1 << 20)
            if not chunk:
                raise Fail(f"chromium closed the DevTools pipe (exit status {proc.poll()})")
            buf += chunk
    raw, buf = buf.split(b"\0", 1)
    msg = json.loads(raw)
    note(msg)
    return msg


def send(method, params=None, session=None):
    global next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    return next_id


def call(method, params=None, session=None):
    want = send(method, params, session)
    while True:
        msg = read_one(deadline)
        if msg.get("id") == want:
            if "error" in msg:
                raise Fail(f"{method}: {msg['error']}")
            return msg.get("result", {})
        if msg.get("method"):
            events.append(msg)


def wait_event(method, session):
    for i, m in enumerate(events):
        if m.get("method") == method and m.get("sessionId") == session:
            del events[i]
            return m
    while True:
        msg = read_one(deadline)
        if msg.get("method") == method and msg.get("sessionId") == session:
            return msg


def drain(seconds):
    """Keep reading (and noting errors) for a little while."""
    until = time.monotonic() + seconds
    while read_one(until) is not None:
        pass


status = 0
try:
    target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for m in ("Page.enable", "Runtime.enable", "Log.enable"):
        call(m, session=s)
    call("Emulation.setDeviceMetricsOverride",
         {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
    nav = call("Page.navigate", {"url": url}, session=s)
    if nav.get("errorText"):
        raise Fail(f"could not load {url}: {nav['errorText']}")
    wait_event("Page.loadEventFired", s)
    drain(0.5)  # late console messages, layout
    size = call("Page.getLayoutMetrics", session=s)["cssContentSize"]
    shot = call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": max(size["width"], width),
                 "height": size["height"], "scale": 1},
    }, session=s)
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    drain(0.2)
    try:
        send("Browser.close")
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
except Fail as e:
    print(f"[recordbridge] ERROR: {e}", file=sys.stderr)
    status = 1
finally:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: chromium and its helpers
        except ProcessLookupError:
            pass
        proc.wait()

for e in errors:
    print(f"[recordbridge] console: {e}", file=sys.stderr)
if errors:
    print(f"[recordbridge] ERROR: {html} logged {len(errors)} console error(s)", file=sys.stderr)
    status = status or 3
sys.exit(status)
PY

if [ "$rc" -eq 3 ]; then
    rb_err "console errors in ${html} (screenshot, if any, in ${png})"
    exit 1
elif [ "$rc" -ne 0 ]; then
    if [ -s "$tmp/chromium.log" ]; then
        rb_err "last lines of chromium's log:"
        tail -n 15 "$tmp/chromium.log" >&2
    fi
    rb_err "screenshot check failed for ${html} (exit ${rc})"
    exit 1
fi
if [ ! -s "$png" ]; then
    rb_err "${png} is missing or empty"
    exit 1
fi
rb_log "ok: ${png} ($(wc -c <"$png") bytes), no console errors"
