#!/bin/bash
# secrets_pinentry.sh — a test pinentry speaking the Assuan protocol, for the secrets-*.sh tests.
# GETPIN answers with the contents of $SECRETS_PIN_FILE, or "cancelled" when that file does not exist;
# a file saying FLOOD makes it answer with 20000 bytes and a broken escape (a hostile pinentry), HANG never
# answer (a window nobody closes).
# Each command's verb (never the PIN) is appended to $SECRETS_PIN_LOG.
echo "OK Pleased to meet you"
while IFS= read -r line; do
	echo "${line%% *}" >>"${SECRETS_PIN_LOG:-/dev/null}"
	case $line in
	GETPIN*)
		if [ "$(cat "${SECRETS_PIN_FILE:-/nonexistent}" 2>/dev/null)" = HANG ]; then
			# Nobody answers: the window stays until it is closed (its pid in $SECRETS_PIN_LOG.pid).
			echo $$ >"$SECRETS_PIN_LOG.pid"
			exec sleep 60
		elif [ "$(cat "${SECRETS_PIN_FILE:-/nonexistent}" 2>/dev/null)" = FLOOD ]; then
			# A hostile pinentry: an answer far longer than any PIN, then garbage escapes.
			printf 'D %s%%zz\nOK\n' "$(head -c 20000 /dev/zero | tr '\0' 'A')"
		elif [ -f "${SECRETS_PIN_FILE:-/nonexistent}" ]; then
			pin=$(cat "$SECRETS_PIN_FILE")
			pin=${pin//%/%25}
			printf 'D %s\nOK\n' "$pin"
		else
			echo "ERR 83886179 Operation cancelled <Pinentry>"
		fi
		;;
	BYE*) echo OK; exit 0 ;;
	*) echo OK ;;
	esac
done
