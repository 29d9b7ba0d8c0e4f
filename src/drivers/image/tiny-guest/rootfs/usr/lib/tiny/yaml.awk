# yaml.awk: a small YAML reader for busybox awk (the subset cloud-config uses, and everything
# the `yaml` npm package's stringify emits): block maps and sequences (also "- - x" and
# "- key: v"), plain / 'single' / "double" quoted scalars (multi-line, with folding and
# escapes), block scalars | and > with chomping (- +) and indentation indicators, flow
# collections [a, b] and {k: v}, comments, blank lines, a leading "---".
#
# Output: one line per node, in document order:
#     PATH <TAB> KIND <TAB> VALUE
# PATH is the dotted path from the root ("write_files.0.content"; sequence items are numbered
# from 0), KIND is M (map), L (list), S (quoted or block string), P (plain scalar) or N (null),
# VALUE is the scalar with \ newline tab CR written as \\ \n \t \r (so it fits on one line).
# Anchors, aliases, tags, complex keys and multiple documents are not supported (ignored).

{
    sub(/\r$/, "")
    if ($0 ~ /^(---|\.\.\.)([ \t]|$)/) {
        if (started) { done = 1 }
        else if ($0 ~ /^---[ \t]+[^ \t#]/) { L[++n] = substr($0, 5); started = 1 }
        next
    }
    if (done) next
    L[++n] = $0
    if ($0 !~ /^[ \t]*(#.*)?$/) started = 1
}

END {
    ln = 1
    parse_block("", 0)
}

# ---------------------------------------------------------------- helpers

function indent_of(s) { match(s, /^ */); return RLENGTH }
function is_blank(s) { return s ~ /^[ \t]*(#.*)?$/ }
function skip_blank() { while (ln <= n && is_blank(L[ln])) ln++ }
function child(p, k) { return p == "" ? k : p "." k }

function repl(s, from, to,    out, i) {
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
    }
    return out s
}

function rep(s, k,    out) { out = ""; while (k-- > 0) out = out s; return out }

function emit(path, kind, val) {
    val = repl(val, "\\", "\\\\")
    val = repl(val, "\n", "\\n")
    val = repl(val, "\t", "\\t")
    val = repl(val, "\r", "\\r")
    printf "%s\t%s\t%s\n", path, kind, val
}

function emit_plain(path, v) {
    if (v == "" || v == "~" || v ~ /^(null|Null|NULL)$/) emit(path, "N", "")
    else emit(path, "P", v)
}

function hexval(h,    i, v, d) {
    v = 0
    h = tolower(h)
    for (i = 1; i <= length(h); i++) {
        d = index("0123456789abcdef", substr(h, i, 1))
        if (!d) break
        v = v * 16 + d - 1
    }
    return v
}

function utf8(cp) {
    if (cp <= 0) return ""
    if (cp < 128) return sprintf("%c", cp)
    if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
    if (cp < 65536) return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
    return sprintf("%c%c%c%c", 240 + int(cp / 262144), 128 + int(cp / 4096) % 64, 128 + int(cp / 64) % 64, 128 + cp % 64)
}

# The escapes of a "double-quoted" scalar (line folding is done before).
function dq_unescape(s,    out, i, c, cp, lo) {
    out = ""
    while ((i = index(s, "\\")) > 0) {
        out = out substr(s, 1, i - 1)
        c = substr(s, i + 1, 1)
        s = substr(s, i + 2)
        if (c == "n") out = out "\n"
        else if (c == "t" || c == "\t") out = out "\t"
        else if (c == "r") out = out "\r"
        else if (c == "a") out = out "\007"
        else if (c == "b") out = out "\010"
        else if (c == "e") out = out "\033"
        else if (c == "f") out = out "\014"
        else if (c == "v") out = out "\013"
        else if (c == "0") out = out ""
        else if (c == "N") out = out utf8(133)
        else if (c == "_") out = out utf8(160)
        else if (c == "L") out = out utf8(8232)
        else if (c == "P") out = out utf8(8233)
        else if (c == "x") { out = out utf8(hexval(substr(s, 1, 2))); s = substr(s, 3) }
        else if (c == "U") { out = out utf8(hexval(substr(s, 1, 8))); s = substr(s, 9) }
        else if (c == "u") {
            cp = hexval(substr(s, 1, 4)); s = substr(s, 5)
            if (cp >= 55296 && cp < 56320 && substr(s, 1, 2) == "\\u") {
                lo = hexval(substr(s, 3, 4))
                if (lo >= 56320 && lo < 57344) { cp = 65536 + (cp - 55296) * 1024 + (lo - 56320); s = substr(s, 7) }
            }
            out = out utf8(cp)
        }
        else out = out c          # \\ \" \/ \  and unknown escapes such as \$
    }
    return out s
}

# ---------------------------------------------------------------- block structure

# A node that starts on line ln at an indentation of at least minind.
function parse_block(path, minind,    s, i, t) {
    skip_blank()
    if (ln > n) { emit(path, "N", ""); return }
    s = L[ln]; i = indent_of(s)
    if (i < minind) { emit(path, "N", ""); return }
    t = substr(s, i + 1)
    if (t ~ /^-([ \t]|$)/) { parse_seq(path, i); return }
    if (map_key(t)) { parse_map(path, i); return }
    parse_value(path, t, minind - 1)
}

# Is t (a line without its indentation) "key: value"? Sets KEY and REST.
function map_key(t,    c, j, k, r) {
    c = substr(t, 1, 1)
    if (c == "\"" || c == "'") {
        if (c == "\"") j = match(substr(t, 2), /^([^"\\]|\\.)*"/)
        else j = match(substr(t, 2), /^([^']|'')*'/)
        if (!j) return 0
        k = substr(t, 2, RLENGTH - 1)
        r = substr(t, RLENGTH + 2)
        sub(/^[ \t]+/, "", r)
        if (r !~ /^:([ \t]|$)/) return 0
        KEY = (c == "\"") ? dq_unescape(k) : repl(k, "''", "'")
        REST = substr(r, 2)
        sub(/^[ \t]+/, "", REST)
        return 1
    }
    if (t ~ /^[]?:,[{}#&*!|>%@`-]/ && t !~ /^[?:-][^ \t]/) return 0
    j = match(t, /:([ \t]|$)/)
    if (!j) return 0
    k = substr(t, 1, j - 1)
    if (k ~ /[ \t]#/) return 0
    sub(/[ \t]+$/, "", k)
    KEY = k
    REST = substr(t, j + 1)
    sub(/^[ \t]+/, "", REST)
    return 1
}

function parse_map(path, mind,    s, i, t, k, r) {
    emit(path, "M", "")
    while (1) {
        skip_blank()
        if (ln > n) break
        s = L[ln]; i = indent_of(s)
        if (i < mind) break
        t = substr(s, i + 1)
        if (i > mind || !map_key(t)) {
            if (i == mind && t ~ /^-([ \t]|$)/) break
            ln++                       # not YAML we understand: skip the line
            continue
        }
        k = KEY; r = REST
        parse_after(child(path, k), r, mind, 1)
    }
}

function parse_seq(path, sind,    cnt, s, i, t) {
    emit(path, "L", "")
    cnt = 0
    while (1) {
        skip_blank()
        if (ln > n) break
        s = L[ln]; i = indent_of(s)
        if (i != sind) break
        t = substr(s, i + 1)
        if (t !~ /^-([ \t]|$)/) break
        if (t ~ /^-[ \t]*(#.*)?$/) {
            parse_after(child(path, cnt), "", sind, 0)
        } else {
            # "- item": blank out the dash and read the item as a block at that column
            L[ln] = substr(s, 1, i) " " substr(s, i + 2)
            parse_block(child(path, cnt), sind + 1)
        }
        cnt++
    }
}

# The value after "key:" (r is the rest of that line); pind is the indentation of the parent.
function parse_after(path, r, pind, same_indent_seq,    s, i, t) {
    if (r ~ /^#/) r = ""
    if (r != "") { parse_value(path, r, pind); return }
    ln++
    skip_blank()
    if (ln > n) { emit(path, "N", ""); return }
    s = L[ln]; i = indent_of(s)
    t = substr(s, i + 1)
    if (i > pind) { parse_block(path, pind + 1); return }
    if (same_indent_seq && i == pind && t ~ /^-([ \t]|$)/) { parse_seq(path, i); return }
    emit(path, "N", "")
}

# A value starting with text r on line ln.
function parse_value(path, r, pind,    c) {
    while (r ~ /^[!&][^ \t]*([ \t]|$)/) {        # tags and anchors: ignored
        sub(/^[!&][^ \t]*[ \t]*/, "", r)
        if (r == "" || r ~ /^#/) { parse_after(path, "", pind, 1); return }
    }
    c = substr(r, 1, 1)
    if (c == "|" || c == ">") block_scalar(path, r, pind)
    else if (c == "\"" || c == "'") quoted(path, r, c)
    else if (c == "[" || c == "{") flow(path, r)
    else plain(path, r, pind)
}

function block_scalar(path, h, pind,    style, chomp, explicit, i, c, cind, s, cnt, lines, j, last, out, more, prevmore, breaks, started) {
    style = substr(h, 1, 1)
    chomp = "clip"; explicit = 0
    for (i = 2; i <= length(h); i++) {
        c = substr(h, i, 1)
        if (c == "-") chomp = "strip"
        else if (c == "+") chomp = "keep"
        else if (c ~ /[1-9]/) explicit = c + 0
        else break
    }
    ln++
    cind = explicit ? (pind < 0 ? 0 : pind) + explicit : -1
    cnt = 0
    while (ln <= n) {
        s = L[ln]
        if (s ~ /^ *$/) {
            lines[++cnt] = (cind >= 0 && length(s) > cind) ? substr(s, cind + 1) : ""
            ln++
            continue
        }
        i = indent_of(s)
        if (cind < 0) {
            if (i <= pind) break
            cind = i
        }
        if (i < cind) break
        lines[++cnt] = substr(s, cind + 1)
        ln++
    }
    last = 0
    for (j = 1; j <= cnt; j++) if (lines[j] != "") last = j
    out = ""
    if (style == "|") {
        for (j = 1; j <= last; j++) out = out lines[j] (j < last ? "\n" : "")
    } else {
        breaks = 0; started = 0; prevmore = 0
        for (j = 1; j <= last; j++) {
            s = lines[j]
            if (s == "") { breaks++; continue }
            more = (s ~ /^[ \t]/)
            if (!started) out = rep("\n", breaks)
            else if (breaks == 0) out = out ((more || prevmore) ? "\n" : " ")
            else out = out rep("\n", breaks + ((more || prevmore) ? 1 : 0))
            out = out s
            started = 1; prevmore = more; breaks = 0
        }
    }
    if (last > 0 && chomp != "strip") out = out "\n"
    if (chomp == "keep") out = out rep("\n", cnt - last)
    emit(path, "S", out)
}

# 'single' or "double" quoted, possibly over several lines.
function quoted(path, r, q,    t, np, parts, j, k, s, out, breaks, esc) {
    t = substr(r, 2)
    np = 0
    while (1) {
        if (q == "\"") j = match(t, /^([^"\\]|\\.)*"/)
        else j = match(t, /^([^']|'')*'/)
        if (j) { parts[++np] = substr(t, 1, RLENGTH - 1); break }
        parts[++np] = t
        ln++
        if (ln > n) break
        t = L[ln]
    }
    ln++
    out = ""; breaks = -1
    for (k = 1; k <= np; k++) {
        s = parts[k]
        if (k > 1) sub(/^[ \t]+/, "", s)
        esc = 0
        if (k < np) {
            if (q == "\"" && s ~ /(^|[^\\])(\\\\)*\\$/) { s = substr(s, 1, length(s) - 1); esc = 1 }
            else {
                t = s
                sub(/[ \t]+$/, "", s)
                # an escaped blank ("\ " or "\<TAB>") at the end of the line is content
                if (q == "\"" && length(s) < length(t) && s ~ /(^|[^\\])(\\\\)*\\$/) s = substr(t, 1, length(s) + 1)
            }
        }
        if (k > 1 && k < np && s == "" && !esc) { breaks++; continue }
        if (breaks >= 0) out = out (breaks == 0 ? " " : rep("\n", breaks))
        out = out s
        breaks = esc ? -1 : 0
    }
    emit(path, "S", q == "\"" ? dq_unescape(out) : repl(out, "''", "'"))
}

function plain(path, r, pind,    v, s, i, breaks, cmt) {
    v = r
    cmt = 0
    if (match(v, /[ \t]#/)) { v = substr(v, 1, RSTART - 1); cmt = 1 }
    sub(/[ \t]+$/, "", v)
    ln++
    breaks = 0
    while (!cmt && ln <= n) {
        s = L[ln]
        if (s ~ /^[ \t]*$/) { breaks++; ln++; continue }
        i = indent_of(s)
        if (i <= pind || s ~ /^[ \t]*#/) break
        s = substr(s, i + 1)
        if (match(s, /[ \t]#/)) { s = substr(s, 1, RSTART - 1); cmt = 1 }
        sub(/[ \t]+$/, "", s)
        v = v (breaks ? rep("\n", breaks) : " ") s
        breaks = 0
        ln++
    }
    # blank lines that did not lead to a continuation belong to the structure: harmless to skip
    emit_plain(path, v)
}

# ---------------------------------------------------------------- flow collections

function flow(path, r,    depth, t, i, c, q) {
    t = r
    while (1) {
        depth = 0; q = ""
        for (i = 1; i <= length(t); i++) {
            c = substr(t, i, 1)
            if (q == "\"") { if (c == "\\") i++; else if (c == "\"") q = "" }
            else if (q == "'") { if (c == "'") q = "" }
            else if (c == "\"" || c == "'") q = c
            else if (c == "#" && (i == 1 || substr(t, i - 1, 1) ~ /[ \t]/)) { t = substr(t, 1, i - 1); break }
            else if (c == "[" || c == "{") depth++
            else if (c == "]" || c == "}") depth--
        }
        if (depth <= 0 || ln >= n) break
        ln++
        t = t "\n" L[ln]
    }
    ln++
    FS_ = t; FP = 1; FL = length(t)
    fnode(path)
}

function fws() { while (FP <= FL && index(" \t\n", substr(FS_, FP, 1))) FP++ }

function fnode(path,    c, cnt, k) {
    fws()
    c = substr(FS_, FP, 1)
    if (c == "[") {
        emit(path, "L", "")
        FP++; cnt = 0
        while (FP <= FL) {
            fws(); c = substr(FS_, FP, 1)
            if (c == "]") { FP++; break }
            if (c == ",") { FP++; continue }
            fnode(child(path, cnt)); cnt++
        }
        return
    }
    if (c == "{") {
        emit(path, "M", "")
        FP++
        while (FP <= FL) {
            fws(); c = substr(FS_, FP, 1)
            if (c == "}") { FP++; break }
            if (c == ",") { FP++; continue }
            k = fscalar(1)
            fws()
            if (substr(FS_, FP, 1) == ":") { FP++; fnode(child(path, k)) }
            else emit(child(path, k), "N", "")
        }
        return
    }
    k = fscalar(0)
    if (FKIND == "P") emit_plain(path, k)
    else emit(path, FKIND, k)
}

function fscalar(iskey,    c, rest, v, s) {
    c = substr(FS_, FP, 1)
    rest = substr(FS_, FP + 1)
    if (c == "\"" && match(rest, /^([^"\\]|\\.)*"/)) {
        v = substr(rest, 1, RLENGTH - 1); FP += RLENGTH + 1; FKIND = "S"
        v = repl(v, "\\\n", ""); gsub(/[ \t]*\n[ \t]*/, " ", v)
        return dq_unescape(v)
    }
    if (c == "'" && match(rest, /^([^']|'')*'/)) {
        v = substr(rest, 1, RLENGTH - 1); FP += RLENGTH + 1; FKIND = "S"
        gsub(/[ \t]*\n[ \t]*/, " ", v)
        return repl(v, "''", "'")
    }
    s = substr(FS_, FP)
    match(s, /^([^],[{}:]|:[^][:space:],[{}])*/)
    v = substr(s, 1, RLENGTH); FP += RLENGTH
    if (RLENGTH == 0 && c != "" && index("],}:", c) == 0) { v = c; FP++ }   # never loop on one char
    gsub(/[ \t]*\n[ \t]*/, " ", v)
    sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
    FKIND = "P"
    return v
}
