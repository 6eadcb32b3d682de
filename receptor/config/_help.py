"""``--help`` and ``--bash-completion`` output, as the upstream cmdline library prints them."""

from receptor.config._entities import ENTITIES, EntityType, Section

__all__ = ["bash_completion", "help_sections", "help_text"]


def _base(program: str) -> str:
    """Go's ``path.Base`` (upstream names itself by the base name of ``argv[0]``)."""
    if not program:
        return "."
    stripped = program.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def _entity_help(entity: EntityType) -> str:
    head = f"   --{entity.name}"
    if entity.description:
        head += f": {entity.description}"
    if entity.required:
        head += " (required)"
    lines = [head]
    for fld in entity.fields:
        line = f"      {fld.name}=<{fld.type.help_type}>"
        if fld.description:
            line += f": {fld.description}"
        extras = []
        if fld.required:
            extras.append("required")
        if fld.default_text:
            extras.append(f"default: {fld.default_text}")
        if extras:
            line += f" ({', '.join(extras)})"
        lines.append(line)
    return "\n".join(lines) + "\n\n"


def help_sections() -> list[tuple[Section | None, list[EntityType]]]:
    """The entities ``--help`` shows, grouped as it shows them (the man page uses the same).

    Hidden and undocumented entities are left out; the unsectioned group comes first, then
    the sections by their order; within a section required entities come first.
    """
    shown = [entity for entity in ENTITIES if entity.documented and not entity.hidden]
    sections: list[Section | None] = [None]
    for entity in shown:
        if entity.section is not None and entity.section not in sections:
            sections.append(entity.section)
    sections[1:] = sorted(sections[1:], key=lambda s: s.order if s else 0)
    grouped = []
    for section in sections:
        members = [entity for entity in shown if entity.section is section]
        ordered = [e for e in members if e.required] + [e for e in members if not e.required]
        grouped.append((section, ordered))
    return grouped


def help_text(program: str) -> str:
    """The text ``receptor --help`` prints, ``program`` being ``argv[0]`` (its base name is
    shown), entities as :func:`help_sections` groups them."""
    name = _base(program)
    out = [
        f"Usage: {name} [--<action> [<param>=<value> ...] ...]\n\n",
        "   --help: Show this help\n\n",
        "   --config <filename>: Load additional config options from a YAML file\n\n",
        "   --bash-completion: Generate a completion script for the bash shell\n",
        f'         Run ". <({name} --bash-completion)" to activate now\n\n',
    ]
    for section, entities in help_sections():
        if section is not None:
            out.append(f"{section.description}\n\n")
        out.extend(_entity_help(entity) for entity in entities)
    return "".join(out)


def bash_completion(program: str) -> str:
    """The bash completion script ``receptor --bash-completion`` prints (function ``_<name>``
    completing command ``<name>``, the base name of ``program``)."""
    name = _base(program)
    listed = [entity for entity in ENTITIES if entity.documented]
    actions = ["--help", "--bash-completion", "--config", "-c"]
    actions.extend(f"--{entity.name}" for entity in listed)
    out = [
        f"_{name}()\n",
        "{\n",
        "  local cur prevdashed count DASHCMDS\n",
        "  cur=${COMP_WORDS[COMP_CWORD]}\n",
        "  count=$((COMP_CWORD-1))\n",
        "  while [[ $count > 1 && ! ${COMP_WORDS[$count]} == --* ]]; do\n",
        "    count=$((count-1))\n",
        "  done\n",
        "  prevdashed=${COMP_WORDS[$count]}\n",
        f'  DASHCMDS="{" ".join(actions)}"\n',
        "  if [[ $cur == -* ]]; then\n",
        '    COMPREPLY=($(compgen -W "$DASHCMDS" -- ${cur}))\n',
        # Upstream's missing newline after "else" is part of the script.
        "  else",
        "    case ${prevdashed} in\n",
        "      -c|--config)\n",
        "        COMPREPLY=($(compgen -f -- ${cur}))\n",
        "        ;;\n",
    ]
    for entity in listed:
        if entity.hidden:
            continue
        params = " ".join(f"{fld.name}=" for fld in entity.fields)
        out.append(f"      --{entity.name})\n")
        out.append(f'        COMPREPLY=($(compgen -W "{params}" -- ${{cur}}))\n')
        out.append("        ;;\n")
    out.extend(
        [
            "      *)\n",
            '        COMPREPLY=($(compgen -W "$DASHCMDS" -- ${cur}))\n',
            "        ;;\n",
            "    esac\n",
            "  fi\n",
            "  [[ $COMPREPLY == *= ]] && compopt -o nospace\n",
            "}\n",
            f"complete -F _{name} {name}\n",
        ]
    )
    return "".join(out)
