"""``personabridge personas list|show|import|export``: persona cards from the terminal.

``import`` keeps a card as it came: a PNG or JSON card is copied into the personas
directory byte for byte (as SillyTavern keeps them), a TOML card too; PersonaBridge's
own options for it (its id, ``--backend``) go in a sidecar ``<id>.personabridge.toml``
beside it. ``export`` writes a Character Card V3: JSON, or a PNG (the card's own image,
or a default one) carrying the V3 card in ``ccv3`` and a V2 copy in ``chara``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bot.avatar import card_image, default_avatar_png
from bot.card_export import card_json, card_png
from bot.card_model import CharacterCard
from bot.config import CoreSettings
from bot.errors import PersonaError
from bot.persona_describe import describe
from bot.persona_loading import load_personas
from bot.persona_toml import check_id
from bot.personas import (
    CARD_SUFFIXES,
    Persona,
    PersonaLibrary,
    card_of,
    load_card,
    sidecar_path,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``personas`` command and its actions."""
    personas = commands.add_parser(
        "personas",
        help="list, show, import and export persona cards",
        description="Persona cards.",
    )
    actions = personas.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the personas", description="List the personas.")
    show = actions.add_parser(
        "show", help="show every field of one persona", description="Show one persona."
    )
    show.add_argument("id")
    imp = actions.add_parser(
        "import",
        help="import a card (TOML, SillyTavern V1/V2/V3 JSON or PNG)",
        description="Copy a persona card (TOML, or a SillyTavern Character Card V1, V2 or V3 "
        "as JSON or PNG) into the personas directory as it is; PersonaBridge's options for "
        "it go in <id>.personabridge.toml beside it. The default persona does not change; a "
        "running server picks the new card up within a few seconds.",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--id", dest="persona_id", help="the id to give it (default: from its name)")
    imp.add_argument(
        "--backend",
        help="the backend that answers for it (default: the card's, else DEFAULT_BACKEND)",
    )
    imp.add_argument("--force", action="store_true", help="overwrite an existing card file")
    exp = actions.add_parser(
        "export",
        help="write a persona as a Character Card V3 (JSON or PNG)",
        description="Write a persona as a Character Card V3: JSON, or PNG with the V3 "
        "card in its ccv3 chunk and a V2 copy in chara for older tools.",
    )
    exp.add_argument("id")
    exp.add_argument("--format", choices=("png", "json"), help="default: png for a PNG card")
    exp.add_argument("-o", "--output", type=Path, help="the file to write (default: ID.FORMAT)")
    exp.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(settings: CoreSettings, args: argparse.Namespace) -> int:
    """Carry out one ``personas`` action; 0 when it worked."""
    if args.action == "import":
        return _import(settings, args.file, args.persona_id, args.backend, args.force)
    library = _library(settings)
    if args.action == "list":
        for persona in library:
            default = " (default)" if persona is library.default else ""
            print(f"{persona.id}\t{persona.name}{default}\t{persona.backend}\t{persona.source}")
        # on stderr: standard output stays one tab-separated line per persona
        print(f"default persona: {library.default.id} ({library.default_reason})", file=sys.stderr)
        return 0
    persona = library.get(args.id)
    if args.action == "show":
        print(describe(persona))
        return 0
    return _export(persona, args.format, args.output, args.force)


def _library(settings: CoreSettings) -> PersonaLibrary:
    return load_personas(settings)  # a DEFAULT_PERSONA naming no card is a setting error


def _import(
    settings: CoreSettings, file: Path, persona_id: str | None, backend: str | None, force: bool
) -> int:
    suffix = file.suffix.lower()
    if suffix not in CARD_SUFFIXES:
        raise PersonaError(f"unsupported card type {file.suffix!r}", source=str(file))
    if persona_id is not None:
        check_id(persona_id, str(file))
    persona = load_card(file, persona_id=persona_id, default_backend=settings.default_backend)
    directory = settings.personas_dir
    target = directory / f"{persona.id}{suffix}"
    sidecar = sidecar_path(target)
    if target.resolve() == file.resolve():
        raise PersonaError("the card is already in the personas directory", source=str(file))
    if (target.exists() or sidecar.exists()) and not force:
        print(f"personabridge: {target} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    written = [target]
    shutil.copyfile(file, target)
    options = [f"id = {_quoted(persona.id)}"]
    if backend:
        options.append(f"backend = {_quoted(backend)}")
    sidecar.write_text(
        "# PersonaBridge's options for the card beside this file\n" + "\n".join(options) + "\n",
        encoding="utf-8",
    )
    written.append(sidecar)
    try:
        library = _library(settings)  # what we wrote must load, with the cards already there
    except PersonaError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    imported = library.get(persona.id)
    print(f"imported {imported.name!r} as {imported.id} ({imported.backend}) -> {target}")
    default = library.default
    if default.id != imported.id:
        print(
            f"The default persona is still {default.id} ({library.default_reason}). "
            f"Talk to this one with /persona {imported.id}, or "
            f"'personabridge chat --persona {imported.id}'."
        )
    print("A running 'personabridge run' picks the card up within a few seconds.")
    return 0


def _export(persona: Persona, kind: str | None, output: Path | None, force: bool) -> int:
    card: CharacterCard = card_of(persona)
    if kind is None and output is not None and output.suffix.lower() in (".png", ".json"):
        kind = output.suffix.lower()[1:]
    kind = kind or ("png" if persona.source.lower().endswith(".png") else "json")
    output = output or Path(f"{persona.id}.{kind}")
    if output.exists() and not force:
        print(f"personabridge: {output} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    if kind == "json":
        output.write_bytes(card_json(card))
    else:
        image = card_image(persona)
        png = image.data if image is not None and image.content_type == "image/png" else None
        output.write_bytes(card_png(card, png or default_avatar_png(persona.name)))
    print(f"exported {persona.id} as a Character Card V3 ({kind}) -> {output}")
    return 0


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
