#!/usr/bin/env python3
"""Host half of the smolvm stand-in's `--mount-socket` bridge.

Real smolvm gives each mounted socket a vsock port; the guest agent listens
on /run/smolvm/published-sockets/<port>.sock (mode 0777) and, for every guest
connection, libkrun dials HOST_PATH as the user who ran smolvm and relays
bytes with independent half-close (docs/smolvm.md, "mount-socket" rows).

This process plays both parts for a Docker-backed machine: it listens on
DIR/<port>.sock (DIR is bind-mounted at /run/smolvm/published-sockets in the
machine's container), and dials HOST_PATH afresh for each connection, so the
host socket need not exist before a guest connects and is reached with this
user's permissions. A connection whose host end cannot be dialled is closed.

    smolvm_socket_relay.py DIR PORT HOST_PATH [PORT HOST_PATH]...

Writes DIR/ready once every listener is bound; runs until killed or until
DIR is removed.
"""

import os
import socket
import sys
import threading
import time


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(conn, host_path):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(host_path)
    except OSError:
        up.close()
        conn.close()
        return
    back = threading.Thread(target=pump, args=(up, conn), daemon=True)
    back.start()
    pump(conn, up)
    back.join()
    conn.close()
    up.close()


def serve(listener, host_path):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=handle, args=(conn, host_path), daemon=True).start()


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 0:
        sys.stderr.write("usage: smolvm_socket_relay.py DIR PORT HOST_PATH [PORT HOST_PATH]...\n")
        return 2
    directory = argv[1]
    pairs = argv[2:]
    for i in range(0, len(pairs), 2):
        port, host_path = pairs[i], pairs[i + 1]
        path = os.path.join(directory, port + ".sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        # Any guest uid may connect, as with smolvm's agent-side listener.
        os.chmod(path, 0o777)
        listener.listen(64)
        threading.Thread(target=serve, args=(listener, host_path), daemon=True).start()
    with open(os.path.join(directory, "ready"), "w", encoding="ascii"):
        pass
    # Outlive nothing: when the machine's record is removed (delete, or a
    # test's cleanup), the bridge goes with it.
    while os.path.isdir(directory):
        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
