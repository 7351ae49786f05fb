from melody.cli import main

main()
