from clusterimage.cli.main import main

main()
