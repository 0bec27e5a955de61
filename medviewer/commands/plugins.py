"""`medviewer plugins`: the installed plugins and whether each can run here (imports no torch)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list the AI plugins and their availability")
    p.add_argument("-v", "--verbose", action="store_true", help="show descriptions and parameters")
    p.add_argument("--trust", metavar="DIR", action="append", default=[],
                   help="trust a bundle folder to run its code (remembered in the settings)")
    p.add_argument("--untrust", metavar="DIR", action="append", default=[],
                   help="remove a folder from the trusted list")
    p.set_defaults(func=run)


def run(args) -> int:
    from medviewer.plugins import trust
    from medviewer.plugins.registry import discover, static_availability, user_plugin_folders

    for folder in args.trust:
        print(f"Trusted {trust.set_trusted(folder, True)} (saved in {trust.settings_path()})")
    for folder in args.untrust:
        print(f"No longer trusted: {trust.set_trusted(folder, False)}")
    found, problems = discover()
    if not found:
        print("No plugins found (entry points need the package installed: pip install -e .)")
    for manifest in sorted(found.values(), key=lambda m: m.id):
        kinds = "/".join((manifest.kind, *manifest.also_kinds))
        avail = static_availability(manifest)
        flags = []
        if manifest.needs_gpu:
            flags.append("needs a GPU")
        if manifest.isolation == "process":
            flags.append("runs in a separate process")
        if manifest.executes_untrusted_code:
            flags.append("runs code from trusted folders only")
        print(f"{manifest.id:<16} {kinds:<24} {avail.describe()}")
        print(f"{'':<16} {manifest.title}" + (f" [{'; '.join(flags)}]" if flags else ""))
        if args.verbose:
            print(f"{'':<16} {manifest.description}")
            for p in manifest.params:
                req = ", required" if p.required else f", default {p.default!r}"
                print(f"{'':<18} --param {p.name}=<{p.type}{req}>  {p.help}")
            if manifest.labels:
                print(f"{'':<18} labels: " + ", ".join(f"{l.value}={l.name}" for l in manifest.labels))
    for problem in problems:
        print(f"problem: {problem.source}: {problem.message}")
    if args.verbose:
        print("User plugin folders: " + ", ".join(user_plugin_folders()))
        trusted = trust.trusted_folders()
        print("Trusted folders: " + (", ".join(trusted) if trusted else "none"))
    return 0
