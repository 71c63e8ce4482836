"""A readable HTML page of a define.xml, for reviewers without CDISC's XSL stylesheet.

One self-contained page (inline CSS, no script, nothing fetched): the datasets, then per dataset
its variables (key, type, length, controlled terms, origin, method, comment), the value-level
metadata, the codelists, the methods and the comments. Every OID is an anchor, so a variable's
codelist, method or value list is one click away.
"""

from __future__ import annotations

from html import escape

from lxml import etree

from .define import DEF, ODM, XLINK

_NS = {"odm": ODM, "def": DEF, "xlink": XLINK}
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 2em 3em;color:#1d2330}
h1{margin:.6em 0 .1em}h2{margin-top:1.6em;border-bottom:2px solid #2f5d8a;padding-bottom:.2em}
h3{margin:1.2em 0 .3em}nav{background:#eef3f8;padding:.5em 1em;border-radius:4px;margin:1em 0}
nav a{margin-right:1em}table{border-collapse:collapse;width:100%;margin:.4em 0 1em}
th,td{border:1px solid #c5ccd6;padding:3px 6px;text-align:left;vertical-align:top}
th,td:first-child{white-space:nowrap}
th{background:#2f5d8a;color:#fff}tr:nth-child(even) td{background:#f6f8fb}
.meta{color:#5a6372}.small{font-size:12px;color:#5a6372;overflow-wrap:anywhere}a{color:#1f5fa8}
"""


def define_html(define_xml: bytes) -> str:
    """The HTML page (a str, UTF-8 when written) describing a Define-XML 2.1 document."""
    root = etree.fromstring(define_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    mdv = root.find("odm:Study/odm:MetaDataVersion", _NS)
    if mdv is None:
        raise ValueError("not a Define-XML document: no Study/MetaDataVersion")
    page = _Page(root, mdv)
    return page.render()


def _text(el) -> str:
    """The English (else first) TranslatedText under el's Description/Decode."""
    if el is None:
        return ""
    texts = el.findall(".//odm:TranslatedText", _NS)
    english = [t for t in texts if t.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"]
    return " ".join(((english or texts)[0].text or "").split()) if texts else ""


def _link(oid: str | None, label: str | None = None) -> str:
    return f'<a href="#{escape(oid)}">{escape(label or oid)}</a>' if oid else ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Page:
    def __init__(self, root, mdv):
        self.root, self.mdv = root, mdv
        self.items = {i.get("OID"): i for i in mdv.findall("odm:ItemDef", _NS)}
        self.codelists = {c.get("OID"): c for c in mdv.findall("odm:CodeList", _NS)}
        self.methods = {m.get("OID"): m for m in mdv.findall("odm:MethodDef", _NS)}
        self.comments = {c.get("OID"): c for c in mdv.findall("def:CommentDef", _NS)}
        self.where = {w.get("OID"): w for w in mdv.findall("def:WhereClauseDef", _NS)}

    def render(self) -> str:
        gv = self.root.find("odm:Study/odm:GlobalVariables", _NS)
        study = gv.findtext("odm:StudyName", "", _NS) if gv is not None else ""
        standards = ", ".join(f"{s.get('Name')} {s.get('Version')}" for s in self.mdv.findall("def:Standards/def:Standard", _NS))
        groups = self.mdv.findall("odm:ItemGroupDef", _NS)
        nav = " ".join(_link(g.get("OID"), g.get("Name")) for g in groups)
        parts = [
            f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Define-XML: {escape(study)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{escape(study)}</h1>",
            f"<p>{escape(gv.findtext('odm:StudyDescription', '', _NS) if gv is not None else '')}</p>",
            f"<p class=\"meta\">Define-XML {escape(self.mdv.get(f'{{{DEF}}}DefineVersion', ''))} &middot; "
            f"{escape(standards)} &middot; created {escape(self.root.get('CreationDateTime', ''))}</p>",
            f"<nav>Datasets: {nav} | <a href=\"#valuelevel\">Value-level metadata</a> <a href=\"#codelists\">Codelists</a> "
            "<a href=\"#methods\">Methods</a> <a href=\"#comments\">Comments</a></nav>",
            "<h2 id=\"datasets\">Datasets</h2>", self._datasets(groups)]
        parts += [self._dataset(g) for g in groups]
        parts += ["<h2 id=\"valuelevel\">Value-level metadata</h2>"]
        parts += [self._value_list(v) for v in self.mdv.findall("def:ValueListDef", _NS)]
        parts += ["<h2 id=\"codelists\">Codelists</h2>"] + [self._codelist(c) for c in self.codelists.values()]
        parts += ["<h2 id=\"methods\">Methods</h2>", _table(["Method", "Name", "Description"], [
            [f'<span id="{escape(oid)}">{escape(oid)}</span>', escape(m.get("Name", "")), escape(_text(m.find("odm:Description", _NS)))]
            for oid, m in self.methods.items()])]
        parts += ["<h2 id=\"comments\">Comments</h2>", _table(["Comment", "Text"], [
            [f'<span id="{escape(oid)}">{escape(oid)}</span>', escape(_text(c))] for oid, c in self.comments.items()])]
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def _datasets(self, groups) -> str:
        rows = []
        for g in groups:
            leaf = g.find("def:leaf", _NS)
            location = (f'<a href="{escape(leaf.get(f"{{{XLINK}}}href", ""))}">{escape(leaf.findtext("def:title", "", _NS))}</a>'
                        if leaf is not None else "(no data)")
            klass = g.find("def:Class", _NS)
            rows.append([_link(g.get("OID"), g.get("Name")), escape(_text(g.find("odm:Description", _NS))),
                         escape(klass.get("Name", "") if klass is not None else ""), escape(g.get(f"{{{DEF}}}Structure", "")),
                         escape(", ".join(self._keys(g))), location])
        return _table(["Dataset", "Description", "Class", "Structure", "Keys", "Location"], rows)

    def _keys(self, group) -> list[str]:
        refs = [r for r in group.findall("odm:ItemRef", _NS) if r.get("KeySequence")]
        refs.sort(key=lambda r: int(r.get("KeySequence")))
        return [self.items[r.get("ItemOID")].get("Name") for r in refs if r.get("ItemOID") in self.items]

    def _dataset(self, g) -> str:
        rows = []
        for ref in g.findall("odm:ItemRef", _NS):
            item = self.items.get(ref.get("ItemOID"))
            if item is None:
                continue
            vl = item.find("def:ValueListRef", _NS)
            name = escape(item.get("Name", "")) + (f"<br>{_link(vl.get('ValueListOID'), 'value level')}" if vl is not None else "")
            rows.append([name, escape(_text(item.find("odm:Description", _NS))), escape(ref.get("KeySequence", "")),
                         escape(ref.get("Mandatory", "")), *self._item_cells(item, ref)])
        title = f"{g.get('Name')} ({_text(g.find('odm:Description', _NS))})"
        comment = self._comment(g)
        return (f'<h3 id="{escape(g.get("OID"))}">{escape(title)}</h3>' + (f"<p>{comment}</p>" if comment else "")
                + _table(["Variable", "Label", "Key", "Mandatory", "Type", "Length", "Controlled terms", "Origin",
                          "Method / comment"], rows))

    def _item_cells(self, item, ref) -> list[str]:
        """Type, length, codelist, origin and method/comment cells of a variable or value-level item."""
        length = item.get("Length", "") + (f".{item.get('SignificantDigits')}" if item.get("SignificantDigits") else "")
        cl = item.find("odm:CodeListRef", _NS)
        cl_oid = cl.get("CodeListOID") if cl is not None else None
        cl_name = self.codelists[cl_oid].get("Name") if cl_oid in self.codelists else cl_oid
        origins = []
        for o in item.findall("def:Origin", _NS):
            desc = _text(o.find("odm:Description", _NS))
            origins.append(escape(" ".join(x for x in (o.get("Type"), f"({o.get('Source')})" if o.get("Source") else "") if x))
                           + (f'<br><span class="small">{escape(desc)}</span>' if desc else ""))
        method = ref.get("MethodOID")
        notes = [_link(method, self.methods[method].get("Name") if method in self.methods else method)] if method else []
        comment = self._comment(item)
        notes += [comment] if comment else []
        return [escape(item.get("DataType", "")), escape(length), _link(cl_oid, cl_name), "<br>".join(origins),
                "<br>".join(notes)]

    def _comment(self, el) -> str:
        oid = el.get(f"{{{DEF}}}CommentOID")
        return escape(_text(self.comments.get(oid))) if oid else ""

    def _value_list(self, vl) -> str:
        rows = []
        for ref in vl.findall("odm:ItemRef", _NS):
            item = self.items.get(ref.get("ItemOID"))
            if item is None:
                continue
            wheres = [self._where_text(w.get("WhereClauseOID")) for w in ref.findall("def:WhereClauseRef", _NS)]
            rows.append([escape(item.get("Name", "")), escape(" or ".join(wheres)),
                         escape(_text(item.find("odm:Description", _NS))), *self._item_cells(item, ref)])
        return (f'<h3 id="{escape(vl.get("OID"))}">{escape(vl.get("OID"))}</h3>'
                + _table(["Variable", "Where", "Label", "Type", "Length", "Controlled terms", "Origin", "Method / comment"], rows))

    def _where_text(self, oid: str) -> str:
        wc = self.where.get(oid)
        if wc is None:
            return oid
        checks = []
        for rc in wc.findall("odm:RangeCheck", _NS):
            item = self.items.get(rc.get(f"{{{DEF}}}ItemOID"))
            values = ", ".join(v.text or "" for v in rc.findall("odm:CheckValue", _NS))
            checks.append(f"{item.get('Name') if item is not None else rc.get(f'{{{DEF}}}ItemOID')} {rc.get('Comparator')} {values}")
        return " and ".join(checks)

    def _codelist(self, cl) -> str:
        oid = cl.get("OID")
        nci = [a.get("Name") for a in cl.findall("odm:Alias", _NS) if a.get("Context") == "nci:ExtCodeID"]
        head = (f'<h3 id="{escape(oid)}">{escape(cl.get("Name", ""))}</h3><p class="meta">{escape(oid)} &middot; '
                f'{escape(cl.get("DataType", ""))}' + (f" &middot; NCI {escape(nci[0])}" if nci else " &middot; sponsor-defined")
                + (f" &middot; {self._comment(cl)}" if self._comment(cl) else "") + "</p>")
        external = cl.find("odm:ExternalCodeList", _NS)
        if external is not None:
            return head + _table(["Dictionary", "Version", "Reference"], [[
                escape(external.get("Dictionary", "")), escape(external.get("Version", "")), escape(external.get("href", ""))]])
        rows = []
        for term in cl.findall("odm:CodeListItem", _NS) + cl.findall("odm:EnumeratedItem", _NS):
            code = [a.get("Name") for a in term.findall("odm:Alias", _NS) if a.get("Context") == "nci:ExtCodeID"]
            extended = " (sponsor extension)" if term.get(f"{{{DEF}}}ExtendedValue") == "Yes" else ""
            rows.append([escape(term.get("CodedValue", "")), escape(_text(term.find("odm:Decode", _NS))),
                         escape(code[0] if code else "") + escape(extended)])
        return head + _table(["Value", "Decode", "NCI code"], rows)
