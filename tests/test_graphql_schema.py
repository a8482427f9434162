"""Every GraphQL document we send, and the fake's executable subset, agree with Linear's published schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

from bot.console import fake_linear
from bot.linear.client import GRAPHQL_DOCUMENTS

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO.parent / "shared" / "schemas" / "linear-schema.graphql"
DOCUMENT_FILES = sorted(p for p in (REPO / "bot" / "linear" / "graphql").iterdir() if p.is_file() and p.suffix != ".py")


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"Linear's published schema is not at {SCHEMA_FILE} (../shared/schemas is absent)")
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(GRAPHQL_DOCUMENTS))
def test_every_sent_document_validates(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(GRAPHQL_DOCUMENTS[name]))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("path", DOCUMENT_FILES, ids=lambda p: p.name)
def test_every_file_in_bot_graphql_validates(schema: GraphQLSchema, path: Path) -> None:
    assert path.suffix == ".graphql", f"{path.name}: bot/linear/graphql holds only .graphql documents"
    errors = validate(schema, parse(path.read_text(encoding="utf-8")))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("path", DOCUMENT_FILES, ids=lambda p: p.name)
def test_one_named_operation_per_file(path: Path) -> None:
    ops = [d for d in parse(path.read_text(encoding="utf-8")).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(ops) == 1 and ops[0].name is not None
    assert ops[0].name.value == path.stem
    assert GRAPHQL_DOCUMENTS[path.stem] == path.read_text(encoding="utf-8")


def test_documents_and_files_are_the_same_set() -> None:
    assert set(GRAPHQL_DOCUMENTS) == {p.stem for p in DOCUMENT_FILES}


def test_fake_subset_matches_published_schema(schema: GraphQLSchema) -> None:
    """The fake answers with Linear's shapes: its types, fields and arguments exist with the same types."""
    subset = fake_linear.subset_schema()
    problems: list[str] = []
    for name, sub_type in subset.type_map.items():
        if name.startswith("__"):
            continue
        real = schema.type_map.get(name)
        if real is None or type(real) is not type(sub_type):
            problems.append(f"type {name} missing or of another kind")
            continue
        if not isinstance(sub_type, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType):
            continue
        assert isinstance(real, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType)
        for field_name, field in sub_type.fields.items():
            real_field = real.fields.get(field_name)
            if real_field is None or str(real_field.type) != str(field.type):
                problems.append(f"{name}.{field_name}: {field.type} vs {real_field and real_field.type}")
                continue
            for arg_name, arg in getattr(field, "args", {}).items():
                real_arg = real_field.args.get(arg_name)  # type: ignore[union-attr]
                if real_arg is None or str(real_arg.type) != str(arg.type):
                    problems.append(f"{name}.{field_name}({arg_name}): {arg.type}")
    assert problems == []
