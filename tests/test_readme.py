"""The README's code blocks stay true to the code: every `wmjax ...` command in a bash block
parses against today's CLI (command, options, values; nothing is run), and every Python block
compiles and its imports resolve. (The blocks themselves train for minutes; this checks that they
still name what exists.)"""

import ast
import pathlib
import re
import shlex

import pytest
from typer.main import get_command

from wmjax.cli import app

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
  return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[str]:
  out = []
  for block in _blocks("bash"):
    text = block.replace("\\\n", " ")
    for line in text.splitlines():
      line = line.split("#", 1)[0].strip()
      if line.startswith("wmjax ") and "..." not in line:
        # the multi-host example's placeholders, as a host would fill them
        out.append(line.replace("--num-processes N", "--num-processes 2")
                   .replace("--process-id i", "--process-id 0"))
  return out


def _parse(command, name: str, args: list[str], parent=None) -> None:
  """Parses ``args`` as the CLI would, down to the subcommand, without invoking anything. (Typer
  may carry its own copy of click, so groups are told by their ``resolve_command``.)"""
  ctx = command.make_context(name, args, parent=parent)
  if hasattr(command, "resolve_command"):
    # click keeps the subcommand's name apart from its arguments (a private field since 8.2)
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
      protected = getattr(ctx, "protected_args", [])
    rest = [*protected, *ctx.args]
    if not rest:
      return
    sub_name, sub, sub_args = command.resolve_command(ctx, rest)
    _parse(sub, sub_name, sub_args, ctx)


COMMANDS = _commands()


def test_the_readme_has_commands_and_python():
  assert len(COMMANDS) > 20 and len(_blocks("python")) >= 2


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line):
  args = shlex.split(line)[1:]
  try:
    _parse(get_command(app), "wmjax", args)
  except Exception as e:  # click's UsageError (from whichever click typer uses)
    if getattr(e, "exit_code", None) == 0 or getattr(e, "code", None) == 0:
      return   # --help
    message = e.format_message() if hasattr(e, "format_message") else repr(e)
    pytest.fail(f"README: `{line}` does not parse: {message}")


@pytest.mark.parametrize("line", ["wmjax train pets --bogus 1", "wmjax train nope",
                                  "wmjax train muzero --steps 0", "wmjax eval"])
def test_a_wrong_command_does_not_parse(line):
  with pytest.raises(Exception, match=".") as info:
    _parse(get_command(app), "wmjax", shlex.split(line)[1:])
  assert hasattr(info.value, "format_message")


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_block_compiles_and_imports(index):
  source = _blocks("python")[index]
  tree = ast.parse(source)
  imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
  assert imports, "a README block must carry its own imports"
  exec(compile(ast.Module(body=imports, type_ignores=[]), "README", "exec"), {})
  compile(source, "README", "exec")
