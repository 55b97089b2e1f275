#!/bin/sh
# Installs the service under ROOT: `/` on the server, or any folder to stage or inspect it.
#
#   deploy/install.sh [--venv-from DIR] ROOT
#
# 1. the repository's files (those git tracks; every file but .git, .venv and caches without git)
#    into ROOT/opt/countries, replacing the code of an earlier install;
# 2. its virtualenv, ROOT/opt/countries/.venv, with requirements.txt installed by pip (or, with
#    --venv-from DIR, a link to the existing virtualenv DIR: a CI job's or a test's);
# 3. ROOT/etc/countries/countries.env from .env.example, only if it does not exist: your settings
#    are never overwritten;
# 4. the systemd units into ROOT/etc/systemd/system, and the nginx site into
#    ROOT/etc/nginx/sites-available/countries, linked from sites-enabled.
# With ROOT=/ it also creates the system user `countries` if missing, lets it read the settings,
# and reloads systemd; enabling the units and reloading nginx are left to you (it says how).
set -eu

usage() { echo "usage: $0 [--venv-from DIR] ROOT" >&2; exit 2; }
venv_from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --venv-from) [ $# -ge 2 ] || usage; venv_from=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
root=${1%/}
source=$(cd "$(dirname "$0")/.." && pwd)
app="$root/opt/countries"
python=${PYTHON:-python3}

echo "installing $source into $app"
mkdir -p "$app" "$root/etc/countries" "$root/etc/systemd/system" \
    "$root/etc/nginx/sites-available" "$root/etc/nginx/sites-enabled"
if git -C "$source" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$source" && git ls-files -z | xargs -0 tar -cf - --) | tar -xf - -C "$app"
else
    (cd "$source" && tar -cf - --exclude=./.git --exclude=./.venv --exclude='*.db' \
        --exclude='__pycache__' --exclude=./cache .) | tar -xf - -C "$app"
fi

if [ -n "$venv_from" ]; then
    [ -x "$venv_from/bin/python" ] || { echo "$venv_from is not a virtualenv" >&2; exit 1; }
    rm -rf "$app/.venv"
    ln -s "$(cd "$venv_from" && pwd)" "$app/.venv"
elif [ ! -x "$app/.venv/bin/python" ]; then
    "$python" -m venv "$app/.venv"
fi
if [ -z "$venv_from" ]; then
    "$app/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$app/requirements.txt"
fi

settings="$root/etc/countries/countries.env"
if [ ! -e "$settings" ]; then
    install -m 0640 "$source/.env.example" "$settings"
    echo "wrote $settings (from .env.example): edit it, then restart the service"
else
    echo "kept $settings"
fi

for unit in countries.service countries-refresh.service countries-refresh.timer \
    countries-rates.service countries-rates.timer; do
    install -m 0644 "$source/deploy/$unit" "$root/etc/systemd/system/$unit"
done
install -m 0644 "$source/deploy/nginx-countries.conf" "$root/etc/nginx/sites-available/countries"
ln -sfn ../sites-available/countries "$root/etc/nginx/sites-enabled/countries"

if [ "$root" = "" ]; then
    id countries >/dev/null 2>&1 || useradd --system --home-dir /opt/countries --shell /usr/sbin/nologin countries
    chgrp countries "$settings"
    systemctl daemon-reload
    echo "next: systemctl enable --now countries.service countries-refresh.timer countries-rates.timer"
    echo "      nginx -t && systemctl reload nginx"
fi
