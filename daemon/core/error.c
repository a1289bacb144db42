/* error.c — the one table mapping TS_E_* codes to D-Bus error names and default messages. */
#include <stdlib.h>
#include <string.h>

#include "tokenseal.h"

#define TS_DBUS_ERROR_PREFIX "org.tokenseal1.Error."

struct ts_error_entry {
	int code;
	const char *dbus_name;  /* full name, so callers get a stable pointer */
	const char *message;
};

#define E(code, name, msg) { code, TS_DBUS_ERROR_PREFIX name, msg }

/*
 * Indexed by code: the static assertion below keeps it complete. The names
 * are part of the D-Bus API (docs/DBUS-API.md): never rename one.
 */
static const struct ts_error_entry ts_errors[] = {
	E(TS_OK, "Failed", "Success"),
	E(TS_E_FAILED, "Failed", "Internal error"),
	E(TS_E_NOMEM, "NoMemory", "Out of memory"),
	E(TS_E_INVALID_ARGS, "InvalidArgs", "Invalid argument"),
	E(TS_E_LOCKED, "Locked", "Vault is locked"),
	E(TS_E_BAD_BLOB, "BadBlob", "Blob is malformed or not authentic"),
	E(TS_E_CONTEXT_MISMATCH, "ContextMismatch", "Blob was wrapped with a different context"),
	E(TS_E_WRONG_VAULT, "WrongVault", "Blob belongs to another vault"),
	E(TS_E_KEY_RETIRED, "KeyRetired", "Blob's root key version has been retired"),
	E(TS_E_ACCESS_DENIED, "AccessDenied", "Access denied"),
	E(TS_E_NO_SUCH_VAULT, "NoSuchVault", "No such vault"),
	E(TS_E_VAULT_EXISTS, "VaultExists", "Vault already exists"),
	E(TS_E_NO_SUCH_PROTECTOR, "NoSuchProtector", "No such protector"),
	E(TS_E_LAST_PROTECTOR, "LastProtector", "Refusing to remove the last protector of a vault"),
	E(TS_E_POLICY_VIOLATION, "PolicyViolation", "Refused by policy"),
	E(TS_E_TOKEN_ABSENT, "TokenAbsent", "Token not present"),
	E(TS_E_TOKEN_NOT_ENROLLED, "TokenNotEnrolled", "Token is not enrolled in this vault"),
	E(TS_E_PIN_INVALID, "PinInvalid", "PIN incorrect"),
	E(TS_E_PIN_BLOCKED, "PinBlocked", "PIN blocked"),
	E(TS_E_PIN_REQUIRED, "PinRequired", "PIN required"),
	E(TS_E_TIMEOUT, "Timeout", "Timed out (no touch?)"),
	E(TS_E_TOUCH_DENIED, "TouchDenied", "User presence declined"),
	E(TS_E_PCR_MISMATCH, "PcrMismatch", "TPM PCR policy no longer matches"),
	E(TS_E_NOT_SUPPORTED, "NotSupported", "Not supported"),
	E(TS_E_KEY_NOT_FOUND, "KeyNotFound", "Key object not found on token"),
	E(TS_E_AUTH_FAILED, "AuthenticationFailed", "Authentication failed: the secret did not open the vault"),
	E(TS_E_BAD_RECOVERY_KEY, "BadRecoveryKey", "Recovery key mistyped (checksum mismatch)"),
	E(TS_E_CORRUPT, "VaultCorrupt", "Vault file is corrupt or was tampered with"),
	E(TS_E_UNSUPPORTED_VERSION, "UnsupportedVersion", "Unsupported format version"),
	E(TS_E_IO, "IOError", "Storage I/O error"),
	E(TS_E_LIMIT, "LimitExceeded", "Size or count limit exceeded"),
	E(TS_E_BUSY, "Busy", "Another operation is in progress"),
	E(TS_E_NO_DAEMON, "ServiceUnknown", "tokensealed is not reachable"),
	E(TS_E_AMBIGUOUS, "AmbiguousProtector", "Several tokens could take this secret: name the protector"),
	E(TS_E_ROLLBACK, "Rollback", "Vault file is older than the last one written (put back from a backup?)"),
};

#undef E

_Static_assert(sizeof(ts_errors) / sizeof(ts_errors[0]) == _TS_E_MAX,
               "every ts_error code needs an entry in ts_errors[]");

static const struct ts_error_entry *ts_error_lookup(int code)
{
	size_t i;

	/* Accept both signs: functions return -code, D-Bus mapping uses +code. */
	if (code < 0) {
		if (code < -(int)_TS_E_MAX)
			return NULL;
		code = -code;
	}
	if (code >= _TS_E_MAX)
		return NULL;
	i = (size_t)code;
	return ts_errors[i].code == code ? &ts_errors[i] : NULL;
}

const char *ts_strerror(int code)
{
	const struct ts_error_entry *e = ts_error_lookup(code);

	return e ? e->message : "Unknown error";
}

const char *ts_error_dbus_name(int code)
{
	const struct ts_error_entry *e = ts_error_lookup(code);

	/* TS_OK is not an error: it has no name of its own. */
	return e && code != TS_OK ? e->dbus_name : ts_errors[TS_E_FAILED].dbus_name;
}

int ts_error_from_dbus_name(const char *name)
{
	size_t i;

	if (!name)
		return TS_E_FAILED;
	for (i = TS_E_FAILED; i < _TS_E_MAX; i++)
		if (strcmp(name, ts_errors[i].dbus_name) == 0)
			return ts_errors[i].code;
	return TS_E_FAILED;
}
