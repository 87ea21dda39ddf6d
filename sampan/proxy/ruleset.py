"""An nftables table as data, printed either whole (an atomic replace) or as the
difference from the table already in the kernel (a partial sync, far cheaper with
thousands of services: only changed chains, map elements and sets are touched)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NamedSet:
    kind: str  # "set" | "map"
    decl: str  # e.g. "type ipv4_addr; flags dynamic,timeout; timeout 60s;"
    elements: list[str] = field(default_factory=list)  # maps: "key : verdict"

    def keyed(self) -> dict[str, str]:
        return {e.rsplit(" : ", 1)[0] if self.kind == "map" else e: e for e in self.elements}


@dataclass
class Ruleset:
    family: str
    table: str
    sets: dict[str, NamedSet] = field(default_factory=dict)
    chains: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # name -> (hook line, rules)

    @property
    def ref(self) -> str:
        return f"{self.family} {self.table}"


def _elements(items: list[str]) -> str:
    return f" elements = {{ {', '.join(items)} }}" if items else ""


def full_text(rs: Ruleset) -> str:
    """Create-if-missing, delete, define: one transaction that replaces the table."""
    out = [f"table {rs.ref} {{\n}}", f"delete table {rs.ref}", f"table {rs.ref} {{"]
    for name, s in rs.sets.items():
        out.append(f"\t{s.kind} {name} {{ {s.decl}{_elements(s.elements)} }}")
    for name, (hook, rules) in rs.chains.items():
        out.append(f"\tchain {name} {{")
        if hook:
            out.append(f"\t\t{hook}")
        out.extend(f"\t\t{r}" for r in rules)
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def diff_text(old: Ruleset, new: Ruleset) -> str | None:
    """Commands turning ``old`` into ``new`` in one transaction ("" when equal), or None
    when only a full replace can do it (a base chain's hook or a set's type changed)."""
    if old.ref != new.ref:
        return None
    for name in old.sets.keys() & new.sets.keys():
        if (old.sets[name].kind, old.sets[name].decl) != (new.sets[name].kind, new.sets[name].decl):
            return None
    for name in old.chains.keys() & new.chains.keys():
        if old.chains[name][0] != new.chains[name][0]:
            return None
    if any(new.chains[n][0] for n in new.chains.keys() - old.chains.keys()):
        return None
    t = new.ref
    cmds: list[str] = []
    added_sets = [n for n in new.sets if n not in old.sets]
    removed_sets = [n for n in old.sets if n not in new.sets]
    added_chains = [n for n in new.chains if n not in old.chains]
    removed_chains = [n for n in old.chains if n not in new.chains]
    changed_chains = [n for n in new.chains if n in old.chains and old.chains[n][1] != new.chains[n][1]]
    for name in added_sets:
        s = new.sets[name]
        cmds.append(f"add {s.kind} {t} {name} {{ {s.decl} }}")
    cmds += [f"add chain {t} {name}" for name in added_chains]
    cmds += [f"flush chain {t} {name}" for name in changed_chains]
    for name in added_chains + changed_chains:
        cmds += [f"add rule {t} {name} {rule}" for rule in new.chains[name][1]]
    for name, s in new.sets.items():
        before = old.sets[name].elements if name in old.sets else []
        if before == s.elements:
            continue  # the usual case: untouched by this sync
        if s.kind == "set":
            want_set, have_set = set(s.elements), set(before)
            gone = [e for e in before if e not in want_set]
            fresh = [e for e in s.elements if e not in have_set]
        else:
            want = s.keyed()
            have = old.sets[name].keyed() if name in old.sets else {}
            gone = [k for k, e in have.items() if want.get(k) != e]
            fresh = [e for k, e in want.items() if have.get(k) != e]
        if gone:
            cmds.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
        if fresh:
            cmds.append(f"add element {t} {name} {{ {', '.join(fresh)} }}")
    # Chains and sets go last, once nothing refers to them any more.
    cmds += [f"flush chain {t} {name}" for name in removed_chains]
    cmds += [f"delete chain {t} {name}" for name in removed_chains]
    cmds += [f"delete {old.sets[name].kind} {t} {name}" for name in removed_sets]
    return "\n".join(cmds) + ("\n" if cmds else "")
