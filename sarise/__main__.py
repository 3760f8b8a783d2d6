from sarise.cli import main

main()
