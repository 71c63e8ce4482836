"""lazy.LazyMap: a value is made when first read, once; iterating and counting make none."""

from tcim_interop.lazy import LazyMap


def test_a_value_is_made_when_first_read_and_once():
    made = []

    def maker(key):
        return lambda: made.append(key) or key * 2

    lazy = LazyMap({k: maker(k) for k in ("a", "b", "c")})
    assert list(lazy) == ["a", "b", "c"] and len(lazy) == 3 and "b" in lazy and "z" not in lazy
    assert made == []
    assert lazy["b"] == "bb" and lazy["b"] == "bb" and lazy.get("z") is None
    assert made == ["b"]
    assert dict(lazy) == {"a": "aa", "b": "bb", "c": "cc"} and made == ["b", "a", "c"]
