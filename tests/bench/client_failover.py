#!/usr/bin/python3
"""One client failover, timed with the real Python IDL (python3-openvswitch, what ovsdbapp and
Neutron use): connect to TARGET among REMOTES, commit a row, SIGKILL the server process behind
TARGET, then time (a) until the IDL is connected to another member again and (b) until a new
row commits. Prints one JSON line.

    client_failover.py SCHEMA REMOTES TARGET PIDFILE

REMOTES is the comma-separated list the IDL gets (as an operator configures it); TARGET is the
one it connects to first; PIDFILE holds the pid of TARGET's server.
"""

import json
import os
import signal
import sys
import time

import ovs.db.idl
import ovs.poller
import ovs.vlog

TIMEOUT = 60.0


def run_until(idl, pred, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idl.run()
        if pred():
            return True
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(5)
        poller.block()
    return False


def insert(idl, name, timeout=TIMEOUT):
    """Commits one Logical_Switch, retrying while the IDL reconnects; the commit's end time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_until(idl, lambda: idl._session.is_connected() and idl.change_seqno > 0)
        txn = ovs.db.idl.Transaction(idl)
        row = txn.insert(idl.tables["Logical_Switch"])
        row.name = name
        status = txn.commit_block()
        if status == ovs.db.idl.Transaction.SUCCESS:
            return time.monotonic()
        if status not in (ovs.db.idl.Transaction.TRY_AGAIN,):
            raise SystemExit(f"commit of {name}: {status} {txn.get_error()}")
    raise SystemExit(f"commit of {name}: no success within {timeout} s")


def main():
    schema, remotes, target, pidfile = sys.argv[1:5]
    # The IDL's reconnect and session log lines, on stderr (the script keeps them in client.log).
    ovs.vlog.Vlog.init(None)
    ovs.vlog.Vlog.set_levels_from_string("console:info")
    print(f"-- failover run: {target} of {remotes}", file=sys.stderr)
    helper = ovs.db.idl.SchemaHelper(location=schema)
    helper.register_table("Logical_Switch")
    idl = ovs.db.idl.Idl(remotes, helper)
    # The IDL shuffles its remotes; start with TARGET so the run kills the member it uses.
    session = idl._session
    session.remotes = [target] + [r for r in session.remotes if r != target]
    session.next_remote = 0
    session.pick_remote()
    if not run_until(idl, lambda: idl._session.is_connected() and idl.change_seqno > 0):
        raise SystemExit(f"no connection to {remotes}")
    if session.get_name() != target:
        raise SystemExit(f"connected to {session.get_name()}, not {target}")
    insert(idl, "before-failover")
    with open(pidfile) as f:
        pid = int(f.read().strip())
    seqno = idl.change_seqno
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    # Reconnected: the IDL has its contents again from another member (it re-requests them
    # on every new session, which moves change_seqno).
    reconnected = None
    if run_until(
        idl,
        lambda: idl._session.is_connected()
        and session.get_name() != target
        and idl.change_seqno > seqno,
    ):
        reconnected = time.monotonic()
    committed = insert(idl, "after-failover")
    print(
        json.dumps(
            {
                "killed": target,
                "now": session.get_name(),
                "reconnect_s": round(reconnected - killed, 3) if reconnected else None,
                "commit_s": round(committed - killed, 3),
            }
        )
    )
    idl.close()


if __name__ == "__main__":
    main()
