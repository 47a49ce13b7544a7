#!/bin/bash
# The image's iptables, iptables-save, iptables-restore and their ip6tables twins (Debian's alternatives point
# them here until the first call). The first call asks which variant this container's kproxy programs
# (image/iptables-variant.ts: forced by its settings, else the variant that already holds more rules, as kproxy
# decides), points the alternatives at that variant so later calls go straight to it, and runs the command.
# When the alternatives cannot be changed (read-only root filesystem) every call decides again.
set -euo pipefail
name="$(basename "$0")"
case "$name" in
  iptables | iptables-save | iptables-restore | ip6tables | ip6tables-save | ip6tables-restore) ;;
  *) echo "iptables-wrapper: called as $name; expected iptables[-save|-restore] or ip6tables[-save|-restore]" >&2; exit 2 ;;
esac
variant="$(node /opt/kproxy/image/iptables-variant.ts)" || variant=""
if [[ "$variant" != legacy && "$variant" != nft ]]; then
  echo "iptables-wrapper: cannot tell which iptables variant kproxy uses (got '${variant}'); using nft" >&2
  variant=nft
fi
for family in iptables ip6tables; do
  update-alternatives --quiet --set "$family" "/usr/sbin/$family-$variant" >/dev/null 2>&1 || true
done
# iptables-save → iptables-legacy-save, ip6tables → ip6tables-legacy, …
family="${name%%-*}"
suffix="${name#"$family"}"
exec "/usr/sbin/$family-$variant$suffix" "$@"
