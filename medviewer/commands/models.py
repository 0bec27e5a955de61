"""`medviewer models`: the MONAI bundles medviewer knows; `medviewer models get NAME`: install one.

Listing reads folders only (no torch). ``get`` downloads through MONAI's own
``monai.bundle.download`` (medviewer_plugins/monai_bundle/download.py, imported only then) into the user's
model folder, and asks whether to trust it: a bundle runs the code in its configs.
"""

from __future__ import annotations

import sys

from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("models", help="list the MONAI bundles medviewer knows; `models get NAME` installs one")
    p.set_defaults(func=run_list)
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    get = actions.add_parser("get", help="download a Model Zoo bundle into the model folder")
    get.add_argument("name", help="the bundle's Model Zoo name, e.g. spleen_ct_segmentation")
    get.add_argument("--version", help="the bundle version (default: the latest)")
    get.add_argument("--source", help="where from: an http(s):// address serving NAME_vVERSION.zip (or NAME.zip), "
                                      "or MONAI's monaihosting (default; $MEDVIEWER_BUNDLE_SOURCE), github, ngc")
    get.add_argument("--url", help="the bundle zip's own address (instead of --source)")
    get.add_argument("--trust", action="store_true", help="trust the installed bundle without asking")
    get.add_argument("--force", action="store_true", help="replace the bundle if it is installed already")
    get.set_defaults(func=run_get)


def run_list(args) -> int:
    from medviewer.plugins import trust
    from medviewer.plugins.model_store import known_bundles, models_folder

    bundles = known_bundles()
    for b in bundles:
        trusted = b.where == "shipped" or trust.is_trusted(b.path)
        print(f"{b.name:<36} {b.version or '?':<8} {b.kind:<13} {b.where:<15} "
              f"{'trusted' if trusted else 'not trusted':<12} {b.path}" + ("" if b.has_weights else "  (no weights)"))
    if not bundles:
        print("No bundles found.")
    print(f"Model folder: {models_folder()} (`medviewer models get NAME` installs a Model Zoo bundle there)")
    return 0


def _ask_trust(path) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"A bundle runs the code in its configs. Trust {path}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run_get(args) -> int:
    from medviewer.plugins import trust
    from medviewer.plugins.model_store import read_info

    if args.url and args.source:
        raise MedviewerError("give --url or --source, not both")
    from medviewer_plugins.monai_bundle.download import default_source, get_bundle  # MONAI: only now

    where = args.url or args.source or default_source()
    print(f"Downloading {args.name}{f' {args.version}' if args.version else ''} from {where} ...")
    path = get_bundle(args.name, args.version, source=args.source, url=args.url, force=args.force)
    info = read_info(path, "model folder")
    print(f"Installed {info.name} {info.version or ''} ({info.kind}) in {path}"
          + ("" if info.has_weights else "; it has no weights (models/model.pt): see its docs/README.md"))
    if args.trust or _ask_trust(path):
        print(f"Trusted {trust.set_trusted(path)} (saved in {trust.settings_path()})")
    else:
        print(f"Not trusted yet: `medviewer plugins --trust {path}` (or --trust here) lets it run")
    return 0
