"""The reproducer attests the dependencies it rebuilt before the outputs that refer to them."""

from __future__ import annotations

from vega.client.agent.reproduce import dependencies_first
from vega.client.nix import PathInfo, parse_path_info
from vega.core.hashes import parse_nix_hash
from vega.core.storepath import StorePath, parse_store_path

HASH = parse_nix_hash("sha256:" + "0" * 52)


def info(name: str, *refs: str) -> PathInfo:
    def sp(n: str) -> StorePath:
        return parse_store_path(f"/nix/store/{n * 32}-{n}")

    return PathInfo(path=sp(name), nar_hash=HASH, nar_size=1, references=tuple(sp(r) for r in refs))


def test_dependencies_come_first_whatever_the_input_order() -> None:
    a, b, c, d = info("a", "b", "c"), info("b", "c", "b"), info("c"), info("d", "z")  # z is not among them
    for given in ([a, b, c, d], [d, c, b, a], [b, a, d, c]):
        order = [str(i.path).split("-")[1] for i in dependencies_first(given)]
        assert sorted(order) == ["a", "b", "c", "d"]
        assert order.index("c") < order.index("b") < order.index("a")


def test_a_cycle_does_not_loop() -> None:
    x, y = info("x", "y"), info("y", "x")
    assert {str(i.path) for i in dependencies_first([x, y])} == {str(x.path), str(y.path)}


def test_ultimate_is_read_from_path_info() -> None:
    doc = (
        b'[{"path":"/nix/store/' + b"a" * 32 + b'-a","narHash":"sha256-' + b"A" * 43 + b'=","narSize":1,'
        b'"ultimate":true},{"path":"/nix/store/' + b"b" * 32 + b'-b","narHash":"sha256-' + b"A" * 43 + b'=",'
        b'"narSize":1,"signatures":["cache.nixos.org-1:x"]}]'
    )
    assert [i.ultimate for i in parse_path_info(doc)] == [True, False]
