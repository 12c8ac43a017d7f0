#!/usr/bin/env bash
# Installs what the deployment tests (tests/deploy/) need on a fresh Debian machine, from Debian's
# packages only: debootstrap (the base image is built locally: there is no image registry),
# docker-compose (when the engine has no `docker compose` plugin), haproxy (`haproxy -c`),
# resource-agents (`ocf-tester`, with xmllint), systemd-analyze, python3-yaml and python3-venv. Idempotent; quiet when everything is present.
set -euo pipefail
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v ocf-tester >/dev/null || [ -x /usr/sbin/ocf-tester ] || need+=(resource-agents)
command -v xmllint >/dev/null || need+=(libxml2-utils)   # ocf-tester lints the agent's meta-data
command -v systemd-analyze >/dev/null || need+=(systemd)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
# A venv for kubernetes-validate (PyPI; validates the manifest offline against bundled schemas).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  need+=(docker-compose)
fi
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "deploy install-deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# (Where systemd runs, Debian's haproxy package starts the system haproxy with its default
# config; the tests run their own haproxy on free ports and leave that one alone.)
