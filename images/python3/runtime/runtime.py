"""
faasbox Python runtime shim: boots, says "ready", then serves the worker over two
inherited fds (3: requests in, 4: replies out; JSON lines). The protocol is
images/PROTOCOL.md; its types are images/protocol.ts.

Started as `python3 -I -S -B -u -X utf8 /opt/faasbox/runtime/runtime.py` (PROTOCOL.md,
"Boot (Python)"). Runs inside the container with the standard library only and no
network. Boot time is the stem cell's cost: "ready" is written before anything else is
imported (json alone is a few ms), and this file stays small because the script run as
__main__ is the one module Python always compiles from source.
"""
import os
import sys
import time

REQUEST_FD = 3
REPLY_FD = 4
END_MARKER = b'\x1eFAASBOX-END '


def boot_ms():
    """Milliseconds since this process started, as well as the process can tell.

    The kernel's start time (/proc/self/stat) has clock-tick resolution (10 ms), so the
    elapsed time it gives is an upper bound up to one tick too high; the CPU time spent so
    far is a lower bound (startup is CPU-bound unless throttled). The larger of the CPU
    time and the upper bound minus a tick is within a tick of the truth either way.
    """
    cpu_ms = time.process_time() * 1000
    try:
        fd = os.open('/proc/self/stat', os.O_RDONLY)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        # Fields after the ")" that ends the command name; starttime is field 22 of stat(5).
        start_ticks = int(stat[stat.rindex(b')') + 2 :].split()[19])
        tick = os.sysconf('SC_CLK_TCK')
        upper_ms = (time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / tick) * 1000
        return max(cpu_ms, upper_ms - 1000 / tick)
    except (OSError, ValueError, IndexError):
        return cpu_ms


def send(line):
    """Writes one reply line to fd 4; the worker gone means nobody will ever read a result again."""
    data = memoryview(line + b'\n')
    try:
        while data:
            data = data[os.write(REPLY_FD, data) :]
    except OSError:
        os._exit(0)


def write_markers(invocation_id):
    """The end marker on stdout and stderr, after everything the function wrote to them.

    Written with os.write on the fds themselves: a function that replaced sys.stdout cannot
    swallow it. Python-level buffers are flushed first; the fds are blocking pipes, so once
    os.write returns, everything before the marker is in the pipe too.
    """
    flush_stdio()
    marker = END_MARKER + invocation_id.encode('utf-8', 'surrogatepass') + b'\n'
    for fd in (1, 2):
        try:
            os.write(fd, marker)
        except OSError:
            pass


def flush_stdio():
    # The current streams (perhaps the function's replacements) and the originals.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass


def body_size(msg):
    """The bytes of raw body announced behind an invoke line (bodyBytes), or None."""
    if not isinstance(msg, dict) or msg.get('type') != 'invoke':
        return None
    size = msg.get('bodyBytes')
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def read_body(size, buf, start):
    """The `size` bytes after buf[start:], read into one buffer of that size (the part
    already buffered first, the rest straight from fd 3); returns them and what the buffer
    held beyond them."""
    body = bytearray(size)
    have = min(size, len(buf) - start)
    body[:have] = buf[start : start + have]
    rest = buf[start + have :]
    filled = have
    with memoryview(body) as view:
        while filled < size:
            try:
                n = os.readv(REQUEST_FD, [view[filled:]])
            except OSError:
                n = 0
            if n == 0:
                flush_stdio()
                os._exit(0)
            filled += n
    return bytes(body), rest


def diagnose(text):
    try:
        os.write(2, f'faasbox-runtime: {text}\n'.encode('utf-8', 'replace'))
    except OSError:
        pass


class Shim:
    def __init__(self, lib):
        self.lib = lib
        self.handler = None

    def load(self, msg):
        lib = self.lib
        started = time.perf_counter()
        code_dir = msg.get('codeDir') or '/var/task'
        entry = str(msg.get('entry') or '')
        try:
            module = lib.load_module(code_dir, entry, msg.get('env'))
            handler = lib.pick_handler(module, msg.get('handler') or 'default', entry)
            lib.prepare(handler)
        except BaseException as err:  # SystemExit at top level is the function's failure too
            send(lib.to_json({'type': 'load-error', 'error': lib.serialize_error(err)}))
            return
        self.handler = handler
        send(lib.to_json({'type': 'loaded', 'ms': round((time.perf_counter() - started) * 1000, 3)}))

    def invoke(self, msg, body=None):
        lib = self.lib
        invocation_id = str(msg.get('id'))
        line = None
        failure = None
        if self.handler is None:
            failure = lib.not_loaded()
        else:
            event = msg.get('event')
            http = msg.get('http')
            if body is not None:
                # The body came once, raw, behind the line (bodyBytes): the event is its JSON,
                # and context.http's body is the same bytes.
                try:
                    event = lib.event_from_body(body)
                except ValueError as err:
                    failure = ValueError(f"the invocation's body is not JSON: {err}")
                http = {**(http if isinstance(http, dict) else {'method': 'POST', 'url': '/', 'headers': {}}), 'body': body}
        if self.handler is not None and failure is None:
            context = lib.Context(invocation_id, msg.get('context'), http)
            try:
                payload = lib.run(self.handler, event, context)
            except BaseException as err:  # sys.exit() in a handler fails the invocation, not the runtime
                failure = err
            else:
                try:
                    line = lib.to_json({'type': 'result', 'id': invocation_id, 'ok': True, **payload})
                except (TypeError, ValueError) as err:
                    failure = TypeError(f"the handler's result is not JSON-serialisable: {err}")
        if failure is not None:
            line = lib.to_json({'type': 'result', 'id': invocation_id, 'ok': False, 'error': lib.serialize_error(failure)})
        write_markers(invocation_id)
        send(line)

    def parse(self, raw):
        """One request line as a message, or None (reported) when it is not JSON."""
        try:
            return self.lib.parse_request(raw)
        except ValueError:
            diagnose(f'ignoring a request that is not JSON: {raw[:200]!r}')
            return None

    def dispatch(self, msg, body=None):
        kind = msg.get('type') if isinstance(msg, dict) else None
        if kind == 'load':
            self.load(msg)
        elif kind == 'invoke':
            self.invoke(msg, body)
        else:
            diagnose(f'ignoring unknown request type {kind!r}')

    def serve(self):
        """Requests one after another, in arrival order, until the worker closes fd 3."""
        buf = bytearray()
        while True:
            try:
                chunk = os.read(REQUEST_FD, 1 << 16)
            except OSError:
                chunk = b''
            if not chunk:
                # The worker closed our request fd: it is done with us. Threads the function
                # left behind must not keep the process alive.
                flush_stdio()
                os._exit(0)
            # Only the new chunk is searched, so a multi-megabyte event costs linear time.
            search_from = len(buf)
            buf += chunk
            start = 0
            while True:
                nl = buf.find(b'\n', search_from)
                if nl < 0:
                    break
                line = bytes(buf[start:nl])
                start = search_from = nl + 1
                if not line.strip():
                    continue
                msg = self.parse(line)
                del line
                size = body_size(msg)
                if size:
                    body, buf = read_body(size, buf, start)
                    start = search_from = 0
                    self.dispatch(msg, body)
                    del body
                elif msg is not None:
                    self.dispatch(msg, b'' if size == 0 else None)
            if start:
                del buf[:start]


def main():
    # The worker's hint for the Node.js shim's warm-up (PROTOCOL.md); not the function's.
    os.environ.pop('FAASBOX_WARM_UP', None)
    send(b'{"type":"ready","runtime":"python3","pid":%d,"bootMs":%.2f}' % (os.getpid(), boot_ms()))
    here = os.path.dirname(os.path.abspath(__file__))
    # -I keeps the script's directory off sys.path; the helper module is found here once,
    # and the path is restored so the function's own imports never see the shim's files.
    sys.path.insert(0, here)
    try:
        import _faasbox_handler as lib
    finally:
        sys.path.remove(here)
    Shim(lib).serve()


if __name__ == '__main__':
    main()
