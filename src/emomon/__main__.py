from emomon.cli import run

run()
