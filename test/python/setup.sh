#!/usr/bin/env bash
# setup.sh: a Python virtual environment with the packages in
# requirements.txt (confluent-kafka from PyPI), made once under
# test/python/.venv and reused while requirements.txt is unchanged. Prints the
# environment's python on its last line. Needs python3 with venv and pip.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$here/.venv
req=$here/requirements.txt
marker=$venv/installed # holds the checksum of the requirements it was made with
sum=$(cksum <"$req")
if [[ ! -f $marker || $(<"$marker") != "$sum" ]]; then
	py=$(command -v python3) || { echo "python3 not found on PATH" >&2; exit 1; }
	rm -rf "$venv"
	"$py" -m venv "$venv" >&2 || {
		echo "python3 -m venv failed: install python3-venv (Debian) or a full CPython" >&2
		exit 1
	}
	"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
	echo "$sum" >"$marker"
fi
echo "$venv/bin/python"
