#!/usr/bin/python3
"""secrets_client.py — a Secret Service client built on Debian's python3-secretstorage, for secrets-*.sh.

    secrets_client.py STEP [ARGS]   (the provider is on $DBUS_SESSION_BUS_ADDRESS)

Each step prints one line "STEP: RESULT" that secrets-clients.sh compares between providers.
"""
import sys

import secretstorage
from jeepney import DBusAddress, new_method_call
from secretstorage import dhcrypto
from secretstorage.util import DBusAddressWrapper

SS_PATH = '/org/freedesktop/secrets'
SERVICE = 'org.freedesktop.Secret.Service'
ATTRS = {'app': 'tokenseal-test'}


def plain_session(conn):
    """A session with algorithm "plain" (secretstorage itself always asks for DH first)."""
    service = DBusAddressWrapper(SS_PATH, SERVICE, conn)
    _, path = service.call('OpenSession', 'sv', 'plain', ('s', ''))
    s = dhcrypto.Session()
    s.encrypted = False
    s.object_path = path
    return s


def dh_session(conn):
    s = secretstorage.util.open_session(conn)
    assert s.encrypted, 'the provider answered the DH request with a plain session'
    return s


def roundtrip(conn, kind, session):
    coll = secretstorage.get_default_collection(conn, session)
    attrs = dict(ATTRS, kind=kind)
    secret = ('secret of the %s session \u00e9\u00e8' % kind).encode()
    item = coll.create_item('label-' + kind, attrs, secret, replace=True)
    item.session = session
    got = item.get_secret()
    found = list(coll.search_items(attrs))
    return 'ok' if got == secret and len(found) == 1 and found[0].get_label() == 'label-' + kind else \
        'wrong: %r %d' % (got, len(found))


def main():
    step = sys.argv[1]
    conn = secretstorage.dbus_init()
    if step == 'plain':
        print('plain: ' + roundtrip(conn, 'plain', plain_session(conn)))
    elif step == 'dh':
        print('dh: ' + roundtrip(conn, 'dh', dh_session(conn)))
    elif step == 'search':
        coll = secretstorage.get_default_collection(conn)
        kinds = sorted(i.get_attributes().get('kind', '-') for i in coll.search_items(ATTRS))
        print('search: ' + ','.join(kinds))
    elif step == 'delete':
        coll = secretstorage.get_default_collection(conn)
        for i in coll.search_items(dict(ATTRS, kind=sys.argv[2])):
            i.delete()
        left = len(list(coll.search_items(dict(ATTRS, kind=sys.argv[2]))))
        print('delete: %d left' % left)
    elif step == 'lock':
        coll = secretstorage.get_default_collection(conn)
        coll.lock()
        print('lock: locked=%s' % coll.is_locked())
    elif step == 'unlock':
        coll = secretstorage.get_default_collection(conn)
        was = coll.is_locked()
        dismissed = coll.unlock()
        print('unlock: was_locked=%s dismissed=%s locked=%s' % (was, dismissed, coll.is_locked()))
    elif step == 'locked-get':
        coll = secretstorage.get_default_collection(conn)
        items = list(coll.search_items(ATTRS))
        try:
            items[0].get_secret()
            print('locked-get: read')
        except secretstorage.exceptions.LockedException:
            print('locked-get: LockedException')
        except Exception as e:  # noqa: BLE001 — the name of what went wrong is the result
            print('locked-get: ' + type(e).__name__)
    elif step == 'dismiss':
        # Unlock, Prompt, then Dismiss once the pinentry runs (its pid file appears): one connection throughout,
        # since a prompt goes with the client that asked for it.
        import os
        import time
        from jeepney import MatchRule, MessageType
        coll = secretstorage.get_default_collection(conn)
        service = DBusAddressWrapper(SS_PATH, SERVICE, conn)
        _, prompt_path = service.call('Unlock', 'ao', [coll.collection_path])
        prompt = DBusAddressWrapper(prompt_path, 'org.freedesktop.Secret.Prompt', conn)
        rule = MatchRule(path=prompt_path, interface='org.freedesktop.Secret.Prompt', member='Completed',
                         type=MessageType.signal)
        with conn.filter(rule) as signals:
            prompt.call('Prompt', 's', '')
            for _ in range(200):
                if os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2]) > 0:
                    break
                time.sleep(0.02)
            prompt.call('Dismiss', '')
            dismissed, _ = conn.recv_until_filtered(signals).body
        print('dismiss: dismissed=%s' % dismissed)
    elif step == 'collection':
        # A collection whose id needs escaping in its object path ('_', a leading digit): reachable there.
        c = secretstorage.create_collection(conn, sys.argv[2])
        again = secretstorage.Collection(conn, c.collection_path)
        item = again.create_item('x', ATTRS, b'v', replace=True)
        print('collection: ' + ('ok' if item.get_secret() == b'v' and again.get_label() == sys.argv[2] else 'wrong'))
    elif step == 'bad-dh':
        # A public key of 1 (the small-subgroup attack): must be refused, not used.
        msg = new_method_call(DBusAddress(SS_PATH, 'org.freedesktop.secrets', SERVICE), 'OpenSession', 'sv',
                              ('dh-ietf1024-sha256-aes128-cbc-pkcs7', ('ay', b'\x01')))
        reply = conn.send_and_get_reply(msg)
        print('bad-dh: ' + ('refused' if reply.header.message_type.name == 'error' else 'accepted'))
    else:
        sys.exit('unknown step ' + step)


if __name__ == '__main__':
    main()
