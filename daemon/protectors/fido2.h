/* fido2.h — what the fido2 backend offers besides its protector ops (for tools and tests). */
#ifndef TS_FIDO2_H
#define TS_FIDO2_H

#include <fido.h>

#include "protectors/protector.h"

/*
 * Open dev at path: "unix:PATH" through the CTAP-HID-over-SOCK_SEQPACKET
 * transport (the test authenticator), only when config->test_devices is set
 * (FIDO_ERR_INVALID_ARGUMENT otherwise); anything else through libfido2's
 * own HID code. Returns a FIDO_ERR_* code (FIDO_OK on success).
 */
int ts_fido2_dev_open(fido_dev_t *dev, const char *path, const ts_config *config);

#endif
