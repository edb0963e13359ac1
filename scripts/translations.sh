#!/usr/bin/env bash
# `make translations`: auth-web's catalogue from its sources (auth-web/babel.cfg) into messages.pot, merged into each
# language's messages.po (a new string appears there untranslated, a changed one fuzzy: auth-web/tests/unit/
# test_translations.py fails until it is translated), then compiled to the .mo files the app reads (not in git).
# A new language: `pybabel init -i messages.pot -d . -l <code>` in auth-web/auth_web/translations, translate it,
# add the code to AUTH_LANGUAGES.
set -euo pipefail
cd "$(dirname "$0")/../auth-web"
pybabel=../.venv/bin/pybabel
catalogues=auth_web/translations
mkdir -p "$catalogues"

# -k: lazy_gettext (as _l) for module constants and WTForms labels; _, gettext and ngettext are pybabel's defaults.
# Locations without line numbers, sorted: the files change only when a string does.
"$pybabel" -q extract -F babel.cfg -k _l -k lazy_gettext --add-location=file --sort-output --no-wrap \
  --project=faceauth --version=0.1.0 --copyright-holder="faceauth contributors" -o "$catalogues/messages.pot" .
"$pybabel" -q update -i "$catalogues/messages.pot" -d "$catalogues" --ignore-obsolete --no-wrap
"$pybabel" compile -d "$catalogues" --statistics
