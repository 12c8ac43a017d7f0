#!/bin/bash
# Container health check: GET /health on the member's HTTP endpoint (HALYARD_HTTP) with bash's
# /dev/tcp, since the minimal image has no curl. Healthy only on a 200 (the member hears a leader
# and has caught up); the body (why not) goes to the health log (`docker inspect`).
set -uo pipefail
http=${HALYARD_HTTP-0.0.0.0:8080}
[ -n "$http" ] || { echo "HALYARD_HTTP is empty: no /health to check"; exit 1; }
port=${http##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
reply=$(timeout 5 cat <&3)
echo "$reply" | sed -n '/^\r\{0,1\}$/,$p' | tail -n +2
case $(echo "$reply" | head -1) in
*" 200 "*) exit 0 ;;
*) exit 1 ;;
esac
