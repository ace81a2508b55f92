# Redis with a password and a non-default database, for the module and the
# worker; a wrong password is named in the log and answered 503
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

# acl => 0: a password of its own, requirepass (test-acl)
my $t = WaTest->new(acl => 0);
my $d = $t->dir;
$t->start_redis('--requirepass', 'r3d1s-pass');
$t->{redis_auth} = [ '-a', 'r3d1s-pass', '--no-auth-warning' ];
$t->write_file('redis-password', "r3d1s-pass\n", 0600);
$t->start_nginx(http => "whatsapp_redis_password_file $d/redis-password;\n"
                        . "    whatsapp_redis_database 3;");

# redis-cli with the password, in database 3
my $cli = sub { $t->redis('-n', 3, @_) };

my $b = messages_body(messages => [ text_message('wamid.AUTH', 'x') ]);
is $t->post($b)->{status}, 200, 'AUTH and SELECT 3: 200';
is $cli->('XLEN', 'wa:messages'), 1, 'the event is in database 3';
is $t->redis('XLEN', 'wa:messages'),
    0, 'not in database 0';

$t->start_worker('redis-password-file' => "$d/redis-password",
                 'redis-db' => 3);
ok $t->wait_for(sub { ($cli->('HGET', 'wa:contact:106540352242922:'
                              . '16505551234', 'messages_in') // 0) == 1 }),
    'the worker applies it in database 3';
unlike $t->error_log . $t->worker_log, qr/r3d1s-pass/,
    'the password is in no log';

# a wrong password: the module says so and answers 503
$t->write_file('redis-password', "wrong\n", 0600);
$t->reload_nginx;
ok $t->wait_log(qr/whatsapp redis: AUTH refused to the Redis user "default": /
                . qr/WRONGPASS/, 10), 'AUTH failure logged';
ok $t->wait_for(sub { $t->post(messages_body(messages => [
       text_message('wamid.NO', 'x') ]))->{status} == 503 }, 30),
   'and 503 so that Meta retries';

done_testing;
