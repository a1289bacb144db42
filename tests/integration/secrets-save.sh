#!/bin/bash
# secrets-save.sh — a store that cannot be written (the data directory full) fails and changes nothing: memory is
# read back from the file, the previous items and secrets are served, before and after a restart.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/secrets_lib.bash"
command -v secret-tool >/dev/null || { echo "secret-tool missing"; exit 77; }
mkdir -p "$SECRETS_DATA"
mount -t tmpfs -o size=256k,mode=0700 tmpfs "$SECRETS_DATA" || fail "mount tmpfs"
save_cleanup() {
	local rc=$?
	if [ -n "$SECRETS_PID" ]; then kill "$SECRETS_PID" 2>/dev/null; wait "$SECRETS_PID" 2>/dev/null; SECRETS_PID=; fi
	umount -l "$SECRETS_DATA" 2>/dev/null || true
	set +e
	(exit $rc)
	rig_cleanup
}
trap save_cleanup EXIT
rig_start_bus
rig_start_daemon --idle-lock 0
create_vault secrets "$RIG_DIR/rk" >/dev/null || fail "CreateVault"
secrets_start_session_bus main
secrets_start
A=(app tokenseal-test)
[ "$(st_store one --label=one "${A[@]}" n 1)" = "exit 0" ] || fail "store one"
[ "$(st_store two --label=two "${A[@]}" n 2)" = "exit 0" ] || fail "store two"
cp "$SECRETS_DATA/login.collection" "$RIG_DIR/before"

# Fill the directory: the temporary file can be made, not written.
dd if=/dev/zero of="$SECRETS_DATA/fill" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$SECRETS_DATA/fill2" bs=1 2>/dev/null || true
[ "$(st_store three --label=three "${A[@]}" n 3)" = "exit 1" ] || fail "a store into a full directory succeeded"
[ "$(st_store TWO --label=two "${A[@]}" n 2)" = "exit 1" ] || fail "a replacing store into a full directory succeeded"
[ "$(st lookup "${A[@]}" n 3)" = "exit 1" ] || fail "an item that was not saved is served"
[ "$(st lookup "${A[@]}" n 2)" = "exit 0 out=two" ] || fail "the replaced secret is served although not saved"
[ "$(st lookup "${A[@]}" n 1)" = "exit 0 out=one" ] || fail "an old item was lost"
cmp -s "$SECRETS_DATA/login.collection" "$RIG_DIR/before" || fail "the collection file changed"
grep -q "change not saved" "$RIG_DIR/secrets.log" || fail "the failed save was not logged"
# The collection's label and an item's deletion: refused, and the label and the item are as on disk.
C=/org/freedesktop/secrets/aliases/default
label=$(busctl --user get-property org.freedesktop.secrets "$C" org.freedesktop.Secret.Collection Label)
busctl --user set-property org.freedesktop.secrets "$C" org.freedesktop.Secret.Collection Label s renamed 2>/dev/null &&
	fail "a label that could not be saved was accepted"
[ "$(busctl --user get-property org.freedesktop.secrets "$C" org.freedesktop.Secret.Collection Label)" = "$label" ] ||
	fail "the label served is not the saved one"
[ "$(st clear "${A[@]}" n 1)" != "exit 0" ] || [ "$(st lookup "${A[@]}" n 1)" = "exit 0 out=one" ] ||
	fail "an item whose deletion was not saved is gone"
cmp -s "$SECRETS_DATA/login.collection" "$RIG_DIR/before" || fail "the collection file changed"
pass "full directory: stores, a label and a deletion fail, memory is the file again, old items served"

rm -f "$SECRETS_DATA/fill" "$SECRETS_DATA/fill2"
secrets_stop
secrets_start
[ "$(st lookup "${A[@]}" n 2)" = "exit 0 out=two" ] && [ "$(st lookup "${A[@]}" n 3)" = "exit 1" ] || fail "after a restart"
[ "$(st_store three --label=three "${A[@]}" n 3)" = "exit 0" ] || fail "store once there is room"
[ "$(st lookup "${A[@]}" n 3)" = "exit 0 out=three" ] || fail "lookup once there is room"
pass "after a restart the same; with room again stores work"
secrets_stop
