"""
Finding a Python function's handler and running it, for the faasbox runtime shim
(runtime.py). Imported right after "ready", so nothing here delays a stem cell's boot.

Handlers look like AWS Lambda's: ``def handler(event, context)`` or
``async def handler(event, context)``. A returned dict in API Gateway's proxy shape
(``statusCode`` plus any of headers, multiValueHeaders, cookies, body, isBase64Encoded)
becomes an HTTP reply, exactly as the Node.js shim's proxy replies do.
"""
import base64
import importlib.util
import json
import os
import sys
import time
import traceback

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
# Frames of these files are the machinery around the function, not the function.
_PLUMBING = (RUNTIME_DIR + os.sep, os.path.join(os.path.dirname(os.__file__), 'asyncio') + os.sep)

CO_COROUTINE = 0x80


class HandlerNotFoundError(Exception):
    code = 'HANDLER_NOT_FOUND'


class NotLoadedError(Exception):
    pass


class Handler:
    """The picked handler: a callable, and whether it is a coroutine function."""

    def __init__(self, target, is_async):
        self.target = target
        self.is_async = is_async


def load_module(code_dir, entry, env):
    """Imports `entry` (a .py file relative to code_dir) the way Lambda does: by file, with code_dir on sys.path."""
    for key, value in (env or {}).items():
        os.environ[str(key)] = str(value)
    try:
        # Functions commonly read files beside their code by relative path.
        os.chdir(code_dir)
    except OSError:
        pass  # the import below fails with the precise error
    path = os.path.normpath(os.path.join(code_dir, entry))
    entry_dir = os.path.dirname(path)
    # Sibling modules (`import helper`) resolve from the code dir and from the entry's own dir.
    for d in (entry_dir, code_dir):
        if d not in sys.path:
            sys.path.insert(0, d)
    if not path.endswith('.py'):
        raise ModuleNotFoundError(f'entry {entry} is not a .py file')
    if not os.path.isfile(path):
        raise ModuleNotFoundError(f'no module file {entry} in {code_dir}')
    name = os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, like any import: a sibling that imports it back gets this module.
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def pick_handler(module, name, entry):
    """The callable `name` of the module. "default" (the platform's default name) means `handler` when the module has no `default`."""
    # The module's own names only: getattr also finds what every module inherits from
    # its type (__class__, __init_subclass__, __dir__, ...), callables that are no handler.
    names = vars(module)
    if not name or (name == 'default' and 'default' not in names):
        name = 'handler'
    value = names.get(name)
    if callable(value):
        return Handler(value, _is_coroutine_function(value))
    public = ', '.join(n for n in names if not n.startswith('_')) or 'none'
    what = 'has no attribute' if value is None else 'attribute is not callable:'
    raise HandlerNotFoundError(f'{entry} {what} "{name}" (names: {public})')


def _is_coroutine_function(fn):
    # inspect would say the same, but importing inspect costs more than the whole check.
    code = getattr(getattr(fn, '__func__', fn), '__code__', None)
    if code is None:
        code = getattr(getattr(fn, '__call__', None), '__code__', None)
    return code is not None and bool(code.co_flags & CO_COROUTINE)


class Context:
    """What the handler gets as its second argument; names follow AWS Lambda's Python context."""

    def __init__(self, invocation_id, payload, http):
        p = payload if isinstance(payload, dict) else {}
        self.invocation_id = p.get('invocationId') or invocation_id
        # Lambda's name for the same id, so ported code runs unchanged.
        self.aws_request_id = self.invocation_id
        self.function_name = p.get('functionName')
        self.function_version = p.get('functionVersion')
        self.memory_limit_in_mb = p.get('memoryLimitMb')
        # At-least-once delivery: 1 on the first try, more after a failure or a crash.
        attempt = p.get('attempt')
        self.attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 1
        key = p.get('idempotencyKey')
        self.idempotency_key = key if isinstance(key, str) else None
        deadline = p.get('deadline')
        self.deadline_ms = deadline if isinstance(deadline, (int, float)) and not isinstance(deadline, bool) else None
        # The HTTP request behind the invocation, when there was one: method, url, headers, body (bytes).
        self.http = _http_request(http)

    def get_remaining_time_in_millis(self):
        if self.deadline_ms is None:
            return sys.maxsize
        return max(0, int(self.deadline_ms - time.time() * 1000))

    def __repr__(self):
        return f'Context(invocation_id={self.invocation_id!r}, function_name={self.function_name!r})'


def _http_request(http):
    if not isinstance(http, dict):
        return None
    url = http.get('url')
    if url is None:
        url = http.get('path') or '/'
        query = http.get('query')
        if isinstance(query, str) and query:
            url += '?' + query.lstrip('?')
        elif isinstance(query, dict) and query:
            from urllib.parse import urlencode

            url += '?' + urlencode(query, doseq=True)
    body = http.get('body') or b''
    return {
        'method': str(http.get('method') or 'GET').upper(),
        'url': url,
        'headers': dict(http.get('headers') or {}),
        # bytes when the body came raw behind the request line (bodyBytes), else base64.
        'body': body if isinstance(body, bytes) else base64.b64decode(body) if body else b'',
    }


_loop = None


def _run_coroutine(awaitable):
    """Runs on one event loop kept for the process's life: clients a warm function keeps in module state stay bound to a live loop."""
    global _loop
    if _loop is None:
        import asyncio

        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(awaitable)


def prepare(handler):
    """Loads what an async handler will need at load time (specialisation), not on its first invocation."""
    if handler.is_async:
        import asyncio  # noqa: F401  (~60 ms of imports, paid here)


def run(handler, event, context):
    """Runs one invocation; returns the result message's payload ({'value': ...} or {'http': ...}). Raises what the handler raises."""
    result = handler.target(event, context)
    if hasattr(result, '__await__'):
        result = _run_coroutine(result)
    if _is_proxy_result(result):
        return {'http': _from_proxy_result(result)}
    return {'value': result}


_PROXY_KEYS = frozenset(('statusCode', 'headers', 'multiValueHeaders', 'body', 'isBase64Encoded', 'cookies'))


def _is_proxy_result(value):
    if not isinstance(value, dict):
        return False
    status = value.get('statusCode')
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return False
    return all(k in _PROXY_KEYS for k in value)


def _header_text(value):
    # As JavaScript's String() would write it, so both runtimes send the same header bytes.
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if value is None:
        return 'null'
    return str(value)


def _from_proxy_result(value):
    headers = {}

    def add(name, v):
        key = str(name).lower()
        headers[key] = f'{headers[key]}, {v}' if key in headers else v

    for name, v in (value.get('headers') or {}).items():
        add(name, _header_text(v))
    for name, vs in (value.get('multiValueHeaders') or {}).items():
        for v in vs if isinstance(vs, (list, tuple)) else [vs]:
            add(name, _header_text(v))
    for c in value.get('cookies') or []:
        add('set-cookie', _header_text(c))
    body = value.get('body')
    if isinstance(body, str):
        encoded = body if value.get('isBase64Encoded') else base64.b64encode(body.encode('utf-8')).decode('ascii')
    elif isinstance(body, (bytes, bytearray, memoryview)):
        encoded = base64.b64encode(bytes(body)).decode('ascii')
    elif body is None:
        encoded = ''
    else:
        # Lenient: Lambda wants a string, but a dict or list body clearly means JSON.
        encoded = base64.b64encode(json.dumps(body, separators=(',', ':')).encode('utf-8')).decode('ascii')
        headers.setdefault('content-type', 'application/json')
    return {'status': value['statusCode'], 'headers': headers, 'body': encoded}


def parse_request(raw):
    """One request line (bytes) as a dict; ValueError when it is not JSON."""
    return json.loads(raw)


def event_from_body(body):
    """The event of a body sent raw (bodyBytes): its JSON, None when empty; ValueError when it is not JSON."""
    # Decoded as the gateway decoded it when it checked the JSON (Node: invalid UTF-8 becomes U+FFFD).
    return json.loads(body.decode('utf-8', 'replace')) if body else None


def to_json(message):
    """One protocol line; raises TypeError/ValueError for values JSON cannot carry (sets, NaN, ...)."""
    try:
        return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(',', ':')).encode('utf-8')
    except UnicodeEncodeError:
        # A lone surrogate in a str: escaped, it is still valid JSON.
        return json.dumps(message, allow_nan=False, separators=(',', ':')).encode('ascii')


def serialize_error(err):
    out = {'name': type(err).__name__, 'message': _message_of(err), 'stack': _traceback_of(err)}
    code = getattr(err, 'code', None)
    if isinstance(code, str):
        out['code'] = code
    return out


def _message_of(err):
    try:
        return str(err)
    except Exception:
        return repr(err)


def _traceback_of(err):
    """The Python traceback, without the shim's, importlib's and asyncio's frames that lead to the function's first one."""
    tb = err.__traceback__
    while tb is not None and _is_plumbing(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    # None left: the plumbing raised it itself (a missing module file), and the message says it all.
    return ''.join(traceback.format_exception(type(err), err, tb))


def _is_plumbing(filename):
    return filename.startswith(_PLUMBING) or filename.startswith('<frozen importlib')


def not_loaded():
    return NotLoadedError('no function is loaded')
