"""Function calling on both dialects: the tool list and tool_choice of a request, and the grammar
that makes the model's calls valid. The grammar is lazy, as llama.cpp's: it switches on only once
the model opens a call block, so reasoning and free text stay unconstrained; `required` or a named
function makes it strict from the first token after the reasoning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engine import tools as r1
from ..engine.bindings import submodule
from ..engine.template import THINK_CLOSE
from ..errors import UsageError
from .grammar import bounded_grammar, bounded_schema

MAX_TOOLS = 128
MAX_TOOL_CALLS = 128  # the calls of one earlier assistant turn


class Strict(BaseModel):
    """Both dialects send tools in this shape; unknown fields are kept aside, as in their bodies."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)


class FunctionSpec(Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionName(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"] = "function"
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


@dataclass(frozen=True)
class ToolPlan:
    """What the engine needs: the functions to show the model, and the grammar for its calls."""

    functions: list[dict]
    grammar: str | None  # None: calls are read unconstrained (or, with calls False, not at all)
    lazy: bool  # wait for the call block to open before constraining
    calls: bool = True  # False: tool_choice "none", the model knows the tools but calls none


def plan_tools(
    tools: list[Tool] | None, choice: ToolChoice | None, parallel: bool | None, *, thinking: bool
) -> ToolPlan | None:
    """None when the request has no tools."""
    if not tools:
        return None
    if choice == "none":
        return ToolPlan([tool.model_dump(exclude_none=True) for tool in tools], None, lazy=False, calls=False)
    forced = choice == "required" or isinstance(choice, NamedToolChoice)
    if isinstance(choice, NamedToolChoice):
        tools = [tool for tool in tools if tool.function.name == choice.function.name]
        if not tools:
            raise UsageError(f"tool_choice names {choice.function.name!r}, which is not in tools.", param="tool_choice")
    functions = [tool.model_dump(exclude_none=True) for tool in tools]
    try:
        grammar = call_grammar(
            [tool.function for tool in tools], parallel=parallel is not False, after_reasoning=forced and thinking
        )
    except UsageError:
        if forced:
            raise
        # tools beyond a grammar's bounds (coding agents send two dozen large schemas): the model
        # may still call them, and its calls are read as written
        grammar = None
    return ToolPlan(functions, grammar, lazy=not forced)


def call_grammar(functions: list[FunctionSpec], *, parallel: bool, after_reasoning: bool) -> str:
    """GBNF for R1's call block, each call's arguments following its function's JSON schema.
    after_reasoning: the output starts inside <think> and the calls follow its end."""
    bounded_schema([function.parameters for function in functions], "tools")  # all share one grammar
    converter = submodule("llama_grammar").SchemaConverter(
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    literal = converter._format_literal  # the pinned converter's own escaping
    calls = []
    for function in functions:
        schema = function.parameters or {"type": "object"}
        try:
            schema = converter.resolve_refs(schema, function.name)
            arguments = converter.visit(schema, f"{function.name}-arguments")
        except Exception as exc:  # the converter raises assorted types for schemas it cannot express
            raise UsageError(
                f"The parameters of tool {function.name!r} cannot be turned into a grammar "
                f"({type(exc).__name__}: {exc}).",
                param="tools",
            ) from None
        head = literal(f"function{r1.SEP}{function.name}\n```json\n")
        calls.append(
            converter._add_rule(f"{function.name}-call", f"{head} {arguments} {literal(chr(10) + '```' + r1.CALL_END)}")
        )
    call = f"{literal(r1.CALL_BEGIN)} ({' | '.join(calls)})"
    block = f"{literal(r1.CALLS_BEGIN)}? {call}" + (f' ("\\n" {call})*' if parallel else "")
    root = f"{block} {literal(r1.CALLS_END)}"
    if after_reasoning:  # any tokens but </think> (one token in R1's vocabulary), then it, then the calls
        root = f"(!{THINK_CLOSE})* {THINK_CLOSE} [ \\n]{{0,4}} {root}"
    return bounded_grammar(converter.format_grammar() + f"\nroot ::= {root}\n", "tools")
