"""Python jinja2 configured as Hugging Face's apply_chat_template configures it, the second reference of
tests/runtime/jinja_test.cpp (the first is @huggingface/jinja, tests/js/jinja_reference.mjs), for the places
where the JavaScript port departs from jinja2.

Mirrors transformers' utils/chat_template_utils.py: ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]), its own `tojson` filter (json.dumps, no
HTML escaping, ensure_ascii off), and the globals raise_exception and strftime_now (here at the request's
fixed clock, in local time).

stdin:  {"now": <unix seconds>, "renders": [{"template": "...", "context": {...}}, ...]}
stdout: {"renders": ["text" | {"error": "...", "raised": bool, "parse": bool}, ...]}
"""

import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers tracks its span)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


class Raised(jinja2.exceptions.TemplateError):
    pass


def main():
    request = json.load(sys.stdin)
    now = datetime.fromtimestamp(request.get("now", 0))

    def raise_exception(message):
        raise Raised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now

    compiled = {}
    answers = []
    for item in request["renders"]:
        source = item["template"]
        if source not in compiled:
            try:
                compiled[source] = env.from_string(source)
            except Exception as error:  # noqa: BLE001 - any parse failure is an answer
                compiled[source] = error
        template = compiled[source]
        if isinstance(template, Exception):
            answers.append({"error": str(template), "raised": False, "parse": True})
            continue
        try:
            answers.append(template.render(**item["context"]))
        except Raised as error:
            answers.append({"error": str(error), "raised": True, "parse": False})
        except Exception as error:  # noqa: BLE001
            answers.append({"error": f"{type(error).__name__}: {error}", "raised": False, "parse": False})
    sys.stdout.write(json.dumps({"renders": answers}))


if __name__ == "__main__":
    main()
