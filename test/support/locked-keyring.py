# A Secret Service whose keyring is locked and whose unlock prompt is never answered
# (or, with the argument `silent`, one that answers no call at all).
import os, sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
S = 'org.freedesktop.Secret.Service'
P = int('FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF', 16)
def log(*a): print(*a, file=sys.stderr, flush=True)
class Service(dbus.service.Object):
    @dbus.service.method(S, in_signature='sv', out_signature='vo')
    def OpenSession(self, algorithm, input):
        log('OpenSession', algorithm)
        if algorithm == 'plain': return (dbus.String('', variant_level=1), dbus.ObjectPath('/org/freedesktop/secrets/session/s1'))
        # Our half of the Diffie-Hellman exchange; no secret is ever sent, so the derived key is unused.
        public = pow(2, int.from_bytes(os.urandom(32), 'big'), P).to_bytes(128, 'big')
        return (dbus.Array([dbus.Byte(b) for b in public], 'y', variant_level=1), dbus.ObjectPath('/org/freedesktop/secrets/session/s1'))
    @dbus.service.method(S, in_signature='a{ss}', out_signature='aoao')
    def SearchItems(self, attrs):
        log('SearchItems', dict(attrs)); return (dbus.Array([], 'o'), dbus.Array([dbus.ObjectPath('/org/freedesktop/secrets/collection/login/1')], 'o'))
    @dbus.service.method(S, in_signature='ao', out_signature='aoo')
    def Unlock(self, objects):
        log('Unlock', list(objects)); return (dbus.Array([], 'o'), dbus.ObjectPath('/org/freedesktop/secrets/prompt/p1'))
    @dbus.service.method(S, in_signature='s', out_signature='o')
    def ReadAlias(self, name):
        log('ReadAlias', name); return dbus.ObjectPath('/org/freedesktop/secrets/collection/login')
class Prompt(dbus.service.Object):
    @dbus.service.method('org.freedesktop.Secret.Prompt', in_signature='s', out_signature='')
    def Prompt(self, window):
        log('Prompt shown; never completed')
    @dbus.service.signal('org.freedesktop.Secret.Prompt', signature='bv')
    def Completed(self, dismissed, result): pass
class Collection(dbus.service.Object):
    @dbus.service.method('org.freedesktop.Secret.Collection', in_signature='a{ss}', out_signature='ao')
    def SearchItems(self, attrs):
        log('Collection.SearchItems', dict(attrs)); return dbus.Array([dbus.ObjectPath('/org/freedesktop/secrets/collection/login/1')], 'o')
    @dbus.service.method('org.freedesktop.DBus.Properties', in_signature='ss', out_signature='v')
    def Get(self, iface, prop):
        log('Get', iface, prop)
        if prop == 'Locked': return dbus.Boolean(True, variant_level=1)
        raise dbus.exceptions.DBusException('no such property')
class Item(Collection):
    pass
bus = dbus.SessionBus()
name = dbus.service.BusName('org.freedesktop.secrets', bus)
if len(sys.argv) > 1 and sys.argv[1] == 'silent':
    # Owns the name and answers nothing at all.
    def swallow(connection, message):
        log('ignored', message.get_member())
        return dbus.lowlevel.HANDLER_RESULT_HANDLED
    bus.add_message_filter(swallow)
Service(bus, '/org/freedesktop/secrets')
Prompt(bus, '/org/freedesktop/secrets/prompt/p1')
Collection(bus, '/org/freedesktop/secrets/collection/login')
Collection(bus, '/org/freedesktop/secrets/aliases/default')
Item(bus, '/org/freedesktop/secrets/collection/login/1')
print('ready', flush=True)
GLib.MainLoop().run()
