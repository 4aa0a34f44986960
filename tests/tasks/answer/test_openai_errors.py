"""The OpenAI-compatible backend against a small HTTP server on 127.0.0.1 that answers what a real one can: a passing
failure is retried with backoff over one kept connection, an endpoint that refuses every request stops the run."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import tasks.answer.backends as backends
from tasks.answer.backends import EndpointRefused, GenerationError, LLMConfig, OpenAIBackend, ServerBusy, make_backend

pytestmark = pytest.mark.unit

REPLY = {
    "choices": [{"message": {"content": "Within 14 days [1]."}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 6},
}
MESSAGES = [{"role": "user", "content": "How long do refunds take?"}]


class ModelServer:
    """Answers POST /v1/chat/completions with the scripted (status, headers, body, delay) in turn, then 200s; records
    each request's client port (one port for all: the connection was kept) and body."""

    def __init__(self, script: list[tuple[int, dict, object, float]]):
        self.script, self.ports, self.bodies = list(script), [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                server.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or "{}"))
                server.ports.append(self.client_address[1])
                status, headers, body, delay = server.script.pop(0) if server.script else (200, {}, REPLY, 0.0)
                time.sleep(delay)
                data = (json.dumps(body) if not isinstance(body, str) else body).encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setattr(backends, "RETRY_DELAYS", (0.05, 0.1, 0.2))
    servers = []

    def start(*script):
        servers.append(ModelServer(list(script)))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def backend(server, timeout: float = 5.0) -> OpenAIBackend:
    return OpenAIBackend(server.url, "smollm2", "sk-test", 2048, timeout=timeout)


@pytest.mark.parametrize(
    ("status", "what_to_check"),
    [(401, "KBFLOW_OPENAI_API_KEY"), (403, "KBFLOW_OPENAI_API_KEY"), (404, "KBFLOW_OPENAI_BASE_URL")],
)
def test_an_endpoint_that_refuses_is_asked_once_and_named_with_its_status(serve, status, what_to_check):
    server = serve((status, {}, {"error": {"message": "bad key sk-test"}}, 0.0))
    with pytest.raises(EndpointRefused) as info:
        backend(server).chat(MESSAGES, 16, 0.0)
    message = str(info.value)
    assert message.startswith(f"the model server {server.url}/chat/completions answered HTTP {status} ")
    assert what_to_check in message and "sk-test" not in message and "\n" not in message
    assert len(server.ports) == 1  # never retried


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_passing_failure_is_retried_and_the_answer_comes_through(serve, status):
    server = serve((status, {}, {"error": "busy"}, 0.0), (status, {}, {"error": "busy"}, 0.0))
    assert backend(server).chat(MESSAGES, 16, 0.0) == ("Within 14 days [1].", 30, 6)
    assert len(server.ports) == 3 and len(set(server.ports)) <= 2  # a 5xx may close the connection; no more


def test_retries_wait_longer_each_time_and_honour_retry_after(serve):
    server = serve((429, {"Retry-After": "0.5"}, {}, 0.0), (503, {}, {}, 0.0), (503, {}, {}, 0.0))
    started = time.monotonic()
    assert backend(server).chat(MESSAGES, 16, 0.0)[0] == "Within 14 days [1]."
    # 0.5 s (Retry-After, longer than the first 0.05 s backoff), then 0.1 s and 0.2 s.
    assert 0.8 <= time.monotonic() - started < 3.0 and len(server.ports) == 4


def test_a_server_that_stays_down_ends_in_one_error_after_the_retries(serve):
    server = serve(*[(500, {}, "Internal error", 0.0)] * 10)
    with pytest.raises(ServerBusy) as info:
        backend(server).chat(MESSAGES, 16, 0.0)
    assert "HTTP 500 Internal Server Error: Internal error" in str(info.value)
    assert len(server.ports) == 1 + len(backends.RETRY_DELAYS)


def test_a_timeout_is_retried(serve):
    server = serve((200, {}, REPLY, 1.0))
    assert backend(server, timeout=0.3).chat(MESSAGES, 16, 0.0)[0] == "Within 14 days [1]."
    assert len(server.ports) == 2


def test_a_request_the_server_rejects_is_that_questions_error_not_retried(serve):
    server = serve((400, {}, {"error": {"message": "prompt is too long"}}, 0.0))
    with pytest.raises(GenerationError) as info:
        backend(server).chat(MESSAGES, 16, 0.0)
    assert not isinstance(info.value, ServerBusy) and "HTTP 400 Bad Request" in str(info.value)
    assert "prompt is too long" in str(info.value) and len(server.ports) == 1


def test_nothing_listening_is_retried_then_said(monkeypatch):
    monkeypatch.setattr(backends, "RETRY_DELAYS", (0.01,))
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerBusy, match=f"cannot reach {url}: ConnectError"):
        OpenAIBackend(url, "m", "", 2048).chat(MESSAGES, 16, 0.0)


def test_one_client_per_endpoint_keeps_one_connection_for_every_question(serve):
    server = serve()
    config = LLMConfig(backend="openai", openai_base_url=server.url, openai_model="smollm2")
    first = make_backend(config)
    for _ in range(5):
        assert make_backend(config).chat(MESSAGES, 16, 0.0)[0] == "Within 14 days [1]."
    assert make_backend(config) is first
    assert len(server.ports) == 5 and len(set(server.ports)) == 1


# llama-cpp-python's server reports its request validation as HTTP 500 (a FastAPI app would answer 422): neither is
# retried.
FORMAT_REFUSALS = [
    (
        500,
        {
            "error": {
                "message": "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', "
                "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
            }
        },
    ),
    (422, {"detail": [{"loc": ["body", "response_format", "type"], "msg": "Input should be 'text' or 'json_object'"}]}),
]


@pytest.mark.parametrize(("status", "refused"), FORMAT_REFUSALS)
def test_a_json_schema_goes_as_json_schema_and_as_json_object_to_a_server_that_knows_only_that(serve, status, refused):
    schema = {"title": "qa_pairs", "type": "object", "properties": {"pairs": {"type": "array"}}}
    server = serve((status, {}, refused, 0.0))
    client = backend(server)
    assert client.chat(MESSAGES, 16, 0.0, json_schema=schema)[0] == "Within 14 days [1]."
    client.chat(MESSAGES, 16, 0.0, json_schema=schema)  # remembered: json_object straight away
    client.chat(MESSAGES, 16, 0.0)  # an answer asks for no format
    assert [body.get("response_format") for body in server.bodies] == [
        {"type": "json_schema", "json_schema": {"name": "qa_pairs", "schema": schema}},
        {"type": "json_object", "schema": schema},
        {"type": "json_object", "schema": schema},
        None,
    ]


def test_another_bad_request_with_a_schema_is_that_requests_error_not_a_second_try(serve):
    server = serve((400, {}, {"error": {"message": "the prompt is longer than the context"}}, 0.0))
    with pytest.raises(GenerationError, match="HTTP 400 Bad Request: .*longer than the context"):
        backend(server).chat(MESSAGES, 16, 0.0, json_schema={"type": "object"})
    assert len(server.bodies) == 1
