from photobatch.cli import cli

cli()
