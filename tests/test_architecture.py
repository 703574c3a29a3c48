"""The tree's shape: layers keep their direction, no import circle, small folders."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "training", "bench", "model_store", "runtimes", "settings", "scoring", "deploy")
# What each package may import from the others: the store contract and runtimes at the bottom, the
# consumers (app, batch scoring) and training above them, bench on top.
MAY_IMPORT = {
    "settings": set(),
    "model_store": set(),
    "runtimes": {"model_store", "settings"},
    "app": {"model_store", "runtimes", "settings"},
    "scoring": {"model_store", "runtimes", "settings"},
    "training": {"model_store", "runtimes", "settings", "scoring"},  # `training score` runs the batch pipeline
    "deploy": {"model_store", "runtimes", "settings"},
    "bench": set(PACKAGES),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (lazy imports included)."""
    graph = {}
    for name, path in modules.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` imports the submodule; `from mod import name` imports mod.
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                out |= subs or {node.module}
        graph[name] = {m for m in out if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_circle():
    assert cycles(import_graph(_modules())) == []


def test_the_check_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_keep_their_direction():
    wrong = []
    for name, imported in import_graph(_modules()).items():
        top = name.split(".")[0]
        wrong += [f"{name} -> {m}" for m in imported if m.split(".")[0] not in MAY_IMPORT[top] | {top}]
    assert wrong == [], wrong


def test_app_and_training_folders_hold_at_most_ten_modules():
    for package in ("app", "training"):
        folders = {path.parent for path in (ROOT / package).rglob("*.py")}
        for folder in sorted(folders):
            assert (folder / "__init__.py").is_file(), f"{folder} is not a package"
            modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
            assert len(modules) <= 10, (folder, len(modules))


def test_one_answer_rule():
    # The label / abstain decision is written once (model_store.answers.decision); everyone else calls it.
    defining = [name for name, path in _modules().items() if any(
        isinstance(n, ast.FunctionDef) and n.name == "decide" for n in ast.walk(ast.parse(path.read_text())))]
    assert defining == ["model_store.answers.decision"]
