from synthkd.cli import main

main()
