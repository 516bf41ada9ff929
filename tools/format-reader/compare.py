"""Compares what reader.py decodes from a store with what the dugong tool prints for it
(read-all with and without hidden events, export, read of every stream). usage: DUGONG=path/to/dugong compare.py STORE"""
import os
import sys, json, subprocess, collections
sys.argv = [sys.argv[0]] + sys.argv[1:]
import reader
from reader import *

def run(*args):
    p = subprocess.run([os.environ.get("DUGONG", "dugong")] + list(args), capture_output=True)
    return p.returncode, p.stdout.decode(), p.stderr.decode()

def lines(out):
    return [json.loads(l) for l in out.splitlines() if l.strip()]

def main():
    path = sys.argv[1]
    st = scan_store(path)
    nerr = 0
    def bad(msg):
        nonlocal nerr
        nerr += 1
        if nerr < 30: print("MISMATCH:", msg)
    # read-all --include-hidden
    st.log = served_log(st)
    for s in st.streams.values():
        s.events = [e for e in s.events if e in st.log] if len(st.log) < st.counts["events"] else s.events
    rc, out, err = run("read-all", path, "--include-hidden")
    L = lines(out)
    if len(L) != len(st.log): bad("read-all --include-hidden %d lines vs %d events" % (len(L), len(st.log)))
    for e, o in zip(st.log, L):
        x = event_line_matches(e, o)
        if x: bad("read-all-hidden pos %d: %s" % (e["position"], x))
    # visible read-all
    vis = []
    for e in st.log:
        s = st.streams[e["stream"]]
        if not s.tomb and e["version"] >= s.visible_from(): vis.append(e)
    rc, out, err = run("read-all", path)
    L = lines(out)
    if len(L) != len(vis): bad("read-all %d lines vs %d visible" % (len(L), len(vis)))
    for e, o in zip(vis, L):
        x = event_line_matches(e, o)
        if x: bad("read-all pos %d: %s" % (e["position"], x))
    # export
    rc, out, err = run("export", path)
    L = lines(out)
    evl = [o for o in L if "type" in o]; lc = [o for o in L if "type" not in o]
    if len(evl) != len(st.log): bad("export %d events vs %d" % (len(evl), len(st.log)))
    for e, o in zip(st.log, evl):
        x = event_line_matches(e, o, with_pos=False)
        if x: bad("export pos %d: %s" % (e["position"], x))
    mylc = []
    for n in sorted(st.streams):
        s = st.streams[n]
        if s.tomb: mylc.append({"stream": n.decode(), "tombstone": True})
        
        if max(s.trunc, s.delete, s.vsa) > 1 and (s.vsa > 1 or not s.tomb): mylc.insert(len(mylc) - (1 if s.tomb else 0), {"stream": n.decode(), "truncateBefore": max(s.trunc, s.delete, s.vsa)})
    if lc != mylc: bad("export lifecycle lines %s vs mine %s" % (lc, mylc))
    # per-stream reads
    nread = 0
    for n, s in st.streams.items():
        rc, out, err = run("read", path, n.decode("utf-8"))
        L = lines(out) if rc == 0 else []
        v = s.visible()
        if rc not in (0,) and v: bad("read %r rc %d %s" % (n, rc, err.strip())); continue
        if len(L) != len(v): bad("read %r: %d lines vs %d visible (rc %d)" % (n, len(L), len(v), rc))
        for e, o in zip(v, L):
            x = event_line_matches(e, o)
            if x: bad("read %r v%d: %s" % (n, e["version"], x))
        nread += 1
    print("compared: %d log events, %d visible, %d streams read, %d lifecycle lines; mismatches %d" % (len(st.log), len(vis), nread, len(lc), nerr))

main()
