from s2hand.cli import main

main()
