from martinique_connect.cli import main

main()
