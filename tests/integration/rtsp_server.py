#!/usr/bin/python3
"""A real RTSP server for the tests (gst-rtsp-server through python3-gst-1.0): serves a live
videotestsrc as H.264 (openh264enc) or MJPEG at rtsp://127.0.0.1:PORT/cam, optionally behind
basic authentication, until SIGTERM. Prints "ready PORT" once it listens."""
import argparse
import signal
import sys

import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODERS = {
    'h264': 'openh264enc complexity=low ! rtph264pay name=pay0 pt=96 config-interval=1',
    'mjpeg': 'jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26',
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--codec', choices=sorted(ENCODERS), default='h264')
    ap.add_argument('--user')
    ap.add_argument('--password')
    a = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # A keyframe every 15 frames: a client that (re)connects decodes within a second.
    factory.set_launch('( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,'
                       'height=240,framerate=15/1 ! videoconvert ! video/x-raw,format=I420 ! '
                       + ENCODERS[a.codec].replace('openh264enc', 'openh264enc gop-size=15')
                       + ' )')
    factory.set_shared(True)
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string('media.factory.role', 'user')
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ''), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role('user', 'media.factory.access', True)
        perms.add_permission_for_role('user', 'media.factory.construct', True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory('/cam', factory)
    if server.attach(None) == 0:
        print('cannot listen on 127.0.0.1:%d' % a.port, file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print('ready %d' % a.port, flush=True)
    loop.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
