# cc.awk: queries the flat form yaml.awk writes (PATH<TAB>KIND<TAB>VALUE).
#   CC_PATH=hostname      awk -v op=get    -f cc.awk FILE   the scalar, decoded, no newline added
#   CC_PATH=users.0       awk -v op=kind   -f cc.awk FILE   M, L, S, P, N, or nothing if absent
#   CC_PATH=runcmd        awk -v op=len    -f cc.awk FILE   number of items of a list (0 if none)
#   CC_PATH=runcmd        awk -v op=script -f cc.awk FILE   the list as a shell script, like
#       cloud-init writes it: a string item is a line of shell as is, a list item is one
#       command whose words are quoted (run as argv, never re-split or expanded)
# The path comes from the environment, never from the awk command line (no escape processing).

BEGIN { FS = "\t"; p = ENVIRON["CC_PATH"]; plen = length(p); cnt = 0; inlist = 0; words = "" }

function repl(s, from, to,    out, i) {
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
    }
    return out s
}

function dec(v,    out, i, c) {
    out = ""
    while ((i = index(v, "\\")) > 0) {
        out = out substr(v, 1, i - 1)
        c = substr(v, i + 1, 1)
        v = substr(v, i + 2)
        if (c == "n") out = out "\n"
        else if (c == "t") out = out "\t"
        else if (c == "r") out = out "\r"
        else out = out c
    }
    return out v
}

function shq(s) { return "'" repl(s, "'", "'\\''") "'" }

function flush() {
    if (inlist && words != "") print words
    inlist = 0; words = ""
}

function value(    v, i) {
    # the value is everything after the second tab (it holds no tab itself, but be safe)
    v = $0
    i = index(v, "\t"); v = substr(v, i + 1)
    i = index(v, "\t"); return substr(v, i + 1)
}

op == "get" {
    if ($1 == p) { if ($2 == "S" || $2 == "P") printf "%s", dec(value()); exit }
    next
}

op == "kind" {
    if ($1 == p) { print $2; exit }
    next
}

op == "len" {
    if (substr($1, 1, plen + 1) == p "." && substr($1, plen + 2) ~ /^[0-9]+$/) cnt++
    next
}

op == "script" {
    if (substr($1, 1, plen + 1) != p ".") next
    rest = substr($1, plen + 2)
    if (rest ~ /^[0-9]+$/) {
        flush()
        if ($2 == "S" || $2 == "P") print dec(value())
        else if ($2 == "L") inlist = 1
    } else if (inlist && rest ~ /^[0-9]+\.[0-9]+$/ && ($2 == "S" || $2 == "P")) {
        words = words (words == "" ? "" : " ") shq(dec(value()))
    }
    next
}

END {
    if (op == "len") print cnt
    if (op == "script") flush()
}
