"""``python -m melody`` and the ``melody`` command (Ctrl-C while it loads: ``interrupts.while_loading``)."""

from melody.interrupts import while_loading


def main() -> None:
    with while_loading(command=True):
        from melody.cli import main as run
    run()


if __name__ == "__main__":
    main()
